"""Every number the series reports, in one file per profile: ``results/<profile>.json``.

Notebooks compute a quantity once (cached, see :mod:`rotlib.experiments`)
and :func:`record` it here under a stable name, e.g.
``table1.nonlinear.rotnet.conv2``, with its per-seed values, their mean,
standard deviation and count, and the paper's number where there is one.
The README's results and claims tables are generated from these files (``make results``;
the shipped models' table in docs/models.md too) and ``make check-results`` checks that those
tables, every "mean ± std" in README.md and docs/*.md and every one printed in a stored notebook
agree with them. CI re-executes the notebooks
into a fresh file and :func:`rotlib.report.compare` fails when a fresh value leaves its
tolerance around the committed one.

This module is the store (where results live, :func:`record`, :func:`load`); the verdicts
(:mod:`rotlib.verdicts`) and the README's tables (:mod:`rotlib.readme`) are built on it, and the checks
and the command line live above all three in :mod:`rotlib.report`.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from .devices import pick_device
from .distributed import is_main
from .files import read_json, update_json
from .profiles import PROFILES
from .settings import current

MIN_TOLERANCE = 1.0          # points: the smallest gap CI treats as a change (see tolerance())


def results_dir() -> Path:
    """Where results are read: ``$ROTLIB_RESULTS`` or ``results/`` in the checkout."""
    return current().results or current().home / "results"


def record_dir() -> Path:
    """Where results are written: ``$ROTLIB_RESULTS`` (``make notebooks`` sets it to ``results/``, ``make test`` to a
    fresh folder), else ``results/scratch/`` (not committed): a notebook run by hand, its exercises included, never
    changes the committed files."""
    return current().results or current().home / "results" / "scratch"


def results_path(profile_name: str, folder: Path | None = None) -> Path:
    return Path(folder or results_dir()) / f"{profile_name}.json"


def _device_kind(device: str) -> str:
    """``cpu`` or ``cuda`` (or another torch device type) for a profile's device setting; ``auto`` as it resolves."""
    return pick_device("auto").type if device == "auto" else device.split(":")[0]


def results_name(profile) -> str:
    """Where a profile's numbers are filed: its own name for a registered profile as registered (``quick``,
    ``paper``; the device counts by its kind, so ``cuda:1`` for ``auto`` on a GPU host is the same), else
    ``scratch/<name>-<hash of its settings>``. So an exercise that changes a profile (more seeds, fewer epochs,
    another dataset, the quick profile on a GPU) never writes into the committed ``results/quick.json``;
    ``results/scratch/`` is not committed."""
    mine = {k: v for k, v in profile.as_dict().items() if k != "device"}
    registered = PROFILES.get(profile.name)
    if registered is not None and {k: v for k, v in registered.as_dict().items() if k != "device"} == mine \
            and _device_kind(profile.device) == _device_kind(registered.device):
        return profile.name
    digest = hashlib.sha256(json.dumps(mine, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"scratch/{profile.name}-{digest}"


def load(profile_name: str = "quick", folder: Path | None = None) -> dict:
    """The recorded quantities of a profile ({} when none were recorded)."""
    return read_json(results_path(profile_name, folder), {})


def summarize(values) -> dict:
    """Mean, sample standard deviation (0 for one value) and count of a list of numbers."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarise")
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"value": round(mean, 2), "std": round(std, 2), "n": n, "values": [round(v, 2) for v in values]}


def tolerance(entry: dict) -> float:
    """How far a fresh re-run's mean may fall from the committed mean: three standard errors of the
    difference of two means of n seeds (3 * std * sqrt(2 / n)), and at least MIN_TOLERANCE points."""
    return round(max(MIN_TOLERANCE, 3 * entry["std"] * math.sqrt(2 / entry["n"])), 2)


class Entry(dict):
    """One recorded quantity; shows as ``name: mean ± std (n=..., paper ...)``."""

    def __repr__(self) -> str:
        paper = f", paper {self['paper']:.2f}" if self.get("paper") is not None else ""
        return f"{self['name']}: {self['value']:.2f} ± {self['std']:.2f} (n={self['n']}{paper})"


def record(name: str, values, profile, notebook: str, paper: float | None = None, unit: str = "%",
           tol: float | None = None) -> Entry:
    """Store a quantity's per-seed ``values`` under ``name`` in ``<record_dir()>/<profile>.json`` (atomically; a
    changed profile's under ``scratch/``, see :func:`results_name`).

    ``tol``: the tolerance CI allows, where the values' own spread cannot give it (one seed); default
    :func:`tolerance`."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-/]+", name):
        raise ValueError(f"quantity names use letters, digits and . _ - /, got {name!r}")
    entry = {"name": name, **summarize(values), "paper": paper, "unit": unit, "notebook": notebook,
             "dataset": profile.dataset, "profile": results_name(profile)}
    entry["tol"] = max(tolerance(entry), tol or 0.0)
    if not is_main():                        # under torchrun only rank 0 writes
        return Entry(entry)

    def merged(old: dict | None) -> dict:        # every notebook that measured it (a markdown cell may quote it)
        before = (old or {}).get("notebooks", [old["notebook"]] if old else [])
        return {**entry, "notebooks": sorted({*before, notebook})}
    update_json(results_path(entry["profile"], record_dir()), name, merged)
    return Entry(entry)


def record_kinds(per_seed: dict, prefix: str, profile, notebook: str, unit="%") -> dict:
    """Record ``{kind: [per-seed dicts of {key: value}]}`` as ``<prefix>.<kind>.<key>``, and RotNet minus each other
    kind, seed by seed (the same seed index), as ``gap.<prefix>.rotnet_minus_<kind>.<key>`` (for the keys both
    have). ``unit``: one unit, or ``{key: unit}``. Returns the entries by ``<kind>.<key>`` and ``gap.<kind>.<key>``."""
    unit_of = unit.get if isinstance(unit, dict) else (lambda key: unit)
    out = {}
    for kind, runs in per_seed.items():
        for key in runs[0]:
            out[f"{kind}.{key}"] = record(f"{prefix}.{kind}.{key}", [r[key] for r in runs], profile, notebook,
                                          unit=unit_of(key))
    for kind in per_seed:
        if kind == "rotnet" or "rotnet" not in per_seed:
            continue
        for key in (k for k in per_seed["rotnet"][0] if k in per_seed[kind][0]):
            diffs = [a[key] - b[key] for a, b in zip(per_seed["rotnet"], per_seed[kind])]
            out[f"gap.{kind}.{key}"] = record(f"gap.{prefix}.rotnet_minus_{kind}.{key}", diffs, profile, notebook,
                                              unit=unit_of(key))
    return out


if __name__ == "__main__":      # the checks and their command line moved to rotlib.report (issue 30)
    raise SystemExit("python -m rotlib.results is now python -m rotlib.report {table,readme,check,compare}")
