"""Runs of the same series on other CPU kinds: how far each recorded quantity moves between machines.

The shipped models are the same everywhere, but what CI recomputes on them (probes trained on frozen features,
mostly) picks up the kernels' rounding: bf16 on an Intel Xeon with AMX, bf16 on an AMD EPYC with AVX-512 BF16, fp32
where a CPU has no native bf16. ``results/evidence/<profile>/<run>.json`` holds such runs, each a results file in the
format of ``results/<profile>.json`` made on the shipped models (where and by which commit each was made:
``results/evidence/README.md``). Two rules read them:

- a quantity's **tolerance** (``rotlib.report.compare``): at least twice the largest move of its mean seen
  between the committed run and a run of the evidence (:func:`largest_mean_shift`);
- a verdict's **margin** (``rotlib.verdicts``): from how far each seed's value moves between kinds
  (:func:`seed_shift`).

Add a run of a new kind by copying a fresh results file here (``build/results-fresh/quick.json`` after ``make
test``); every margin and tolerance then changes, so re-run ``make notebooks``. A quantity none of the runs measured
falls back to its seed-to-seed spread.
"""
from __future__ import annotations

import math
from pathlib import Path

from .files import read_json
from .settings import current

ROUNDING = 0.005     # recorded values have two decimals: a quantity that never moves still moves by this much


def evidence_dir(results_file: Path) -> Path:
    """The runs on other CPU kinds that belong to a results file: ``results/quick.json`` ->
    ``results/evidence/quick/``."""
    results_file = Path(results_file)
    return results_file.parent / "evidence" / results_file.stem


def committed_evidence_dir(profile_name: str) -> Path:
    """The evidence of a profile's committed results file in the checkout (``<home>/results/<profile>.json``),
    wherever the notebooks record (``make test`` records into a fresh folder)."""
    return evidence_dir(current().home / "results" / f"{profile_name}.json")


def load_runs(folder: Path) -> dict[str, dict]:
    """The runs in an evidence folder by file stem ({} when there is no folder): ``{"amd-avx512bf16": {quantity:
    entry}}``. Verdict files (``*.verdicts.json``) are not runs."""
    folder = Path(folder)
    paths = sorted(p for p in folder.glob("*.json") if not p.name.endswith(".verdicts.json")) if folder.is_dir() else []
    return {path.stem: read_json(path) for path in paths}


def largest_mean_shift(name: str, value: float, runs: dict[str, dict]) -> float | None:
    """The largest |mean in a run - ``value``| of quantity ``name`` over the runs that measured it (None: none did)."""
    shifts = [abs(run[name]["value"] - value) for run in runs.values() if name in run]
    return max(shifts) if shifts else None


def seed_shift(entry: dict, runs: dict[str, dict]) -> float:
    """How far one seed's value of ``entry`` moves between CPU kinds: the root mean square of the per-seed
    differences between ``entry`` and every run that measured it (seed s against seed s), at least
    :data:`ROUNDING`. Where no run measured it, its seed-to-seed standard deviation stands in (kernels move a value
    by less than a new seed does: a cautious guess)."""
    diffs = []
    for name, run in runs.items():
        if entry["name"] in run:
            theirs = run[entry["name"]]["values"]
            if len(theirs) != len(entry["values"]):
                raise ValueError(f"{entry['name']}: {len(theirs)} seeds in the evidence run {name!r}, "
                                 f"{len(entry['values'])} here: seeds are matched by position, so both need the same")
            diffs += [x - y for x, y in zip(theirs, entry["values"])]
    if not diffs:
        return max(ROUNDING, entry.get("std", 0.0))
    return max(ROUNDING, math.sqrt(sum(d * d for d in diffs) / len(diffs)))


def largest_seed_shift(committed: dict[str, dict], runs: dict[str, dict]) -> float:
    """The largest |one seed's value in a run - the same seed's committed value| over every accuracy (unit %, not the
    differences ``gap.*``) of the committed results that the runs also measured: how far kernels alone have moved a
    single accuracy between CPU kinds."""
    accuracies = {name: e for name, e in committed.items() if not name.startswith("gap.") and e.get("unit") == "%"}
    shifts = [abs(x - y) for name, entry in accuracies.items()
              for run in runs.values() if name in run for x, y in zip(run[name]["values"], entry["values"])]
    return max(shifts, default=ROUNDING)
