"""Runs of the same series on other CPU kinds: how far each recorded quantity moves between machines.

The shipped models are the same everywhere, but what CI recomputes on them (probes trained on frozen features,
mostly) picks up the kernels' rounding: bf16 on an Intel Xeon with AMX, bf16 on an AMD EPYC with AVX-512 BF16, fp32
where a CPU has no native bf16. ``results/evidence/<profile>/<run>.json`` holds such runs, each a results file in the
format of ``results/<profile>.json`` made by the committed code on the committed models (where each came from:
``results/evidence/README.md``). Two rules read them:

- a quantity's **tolerance** (``rotlib.results.compare``): at least twice the largest move of its mean seen
  between the committed run and a run of the evidence (:func:`largest_mean_shift`);
- a verdict's **margin** (``rotlib.verdicts``): from how far each seed's value moves between kinds
  (:func:`seed_shift`).

Add a run of a new kind by copying a fresh results file here (``build/results-fresh/quick.json`` after ``make
test``); a quantity none of the runs measured falls back to its seed-to-seed spread.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .settings import current

ROUNDING = 0.005     # recorded values have two decimals: a quantity that never moves still moves by this much


def evidence_dir(profile_name: str, home: Path | None = None) -> Path:
    return Path(home or current().home) / "results" / "evidence" / profile_name


def load_runs(profile_name: str, folder: Path | None = None) -> dict[str, dict]:
    """The evidence runs of a profile by file stem ({} when none): ``{"amd-avx512bf16": {quantity: entry}}``."""
    folder = Path(folder) if folder else evidence_dir(profile_name)
    runs = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            runs[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); restore it with `git checkout -- {path}`") from None
    return runs


def largest_mean_shift(name: str, value: float, runs: dict[str, dict]) -> float | None:
    """The largest |mean in a run - ``value``| of quantity ``name`` over the runs that measured it (None: none did)."""
    shifts = [abs(run[name]["value"] - value) for run in runs.values() if name in run]
    return max(shifts) if shifts else None


def seed_shift(entry: dict, runs: dict[str, dict]) -> float:
    """How far one seed's value of ``entry`` moves between CPU kinds: the root mean square of the per-seed
    differences between ``entry`` and every run that measured it (seed s against seed s), at least
    :data:`ROUNDING`. Where no run measured it, its seed-to-seed standard deviation stands in (kernels move a value
    by less than a new seed does: a cautious guess)."""
    diffs = [x - y for run in runs.values() if entry["name"] in run
             for x, y in zip(run[entry["name"]]["values"], entry["values"])]
    if not diffs:
        return max(ROUNDING, entry.get("std", 0.0))
    return max(ROUNDING, math.sqrt(sum(d * d for d in diffs) / len(diffs)))
