"""Every number the series reports, in one file per profile: ``results/<profile>.json``.

Notebooks compute a quantity once (cached, see :mod:`rotlib.experiments`)
and :func:`record` it here under a stable name, e.g.
``table1.nonlinear.rotnet.conv2``, with its per-seed values, their mean,
standard deviation and count, and the paper's number where there is one.
The README's results and claims tables are generated from these files (``make results``;
the shipped models' table in docs/models.md too) and ``make check-results`` checks that those
tables, every "mean ± std" in README.md and docs/*.md and every one printed in a stored notebook
agree with them. CI re-executes the notebooks
into a fresh file and :func:`compare` fails when a fresh value leaves its
tolerance around the committed one.

Command line: ``python -m rotlib.results {table,readme,check,compare}``.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from . import verdicts as V
from .distributed import is_main
from .evidence import evidence_dir, largest_mean_shift, load_runs
from .files import read_json, update_json
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
    from .train import pick_device
    return pick_device("auto").type if device == "auto" else device.split(":")[0]


def results_name(profile) -> str:
    """Where a profile's numbers are filed: its own name for a registered profile as registered (``quick``,
    ``paper``; the device counts by its kind, so ``cuda:1`` for ``auto`` on a GPU host is the same), else
    ``scratch/<name>-<hash of its settings>``. So an exercise that changes a profile (more seeds, fewer epochs,
    another dataset, the quick profile on a GPU) never writes into the committed ``results/quick.json``;
    ``results/scratch/`` is not committed."""
    import hashlib
    from .profiles import PROFILES
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


# ---------------------------------------------------------------- checks
PAIR = re.compile(r"(-?\d+(?:\.(\d+))?)\s*±\s*(\d+(?:\.(\d+))?)")


def _matches(results: dict, mean: str, mean_dec: str | None, std: str, std_dec: str | None) -> bool:
    """Is some recorded (value, std) equal to the printed pair at the printed precision?"""
    dm, ds = len(mean_dec or ""), len(std_dec or "")
    for e in results.values():
        for sign in (1, -1):                         # a printed difference may be "b - a"
            if (f"{sign * e['value']:.{dm}f}" == mean or f"{sign * e['value']:.{dm}f}" == mean.replace("-", "")) \
                    and f"{e['std']:.{ds}f}" == std:
                return True
    return False


def check_text(results: dict, text: str, where: str) -> list[str]:
    """Every ``mean ± std`` in ``text`` must be a recorded quantity (at the printed precision)."""
    return [f"{where}: '{m.group(0)}' is not in the results file" for m in PAIR.finditer(text)
            if not _matches(results, m.group(1), m.group(2), m.group(3), m.group(4))]


NOTEBOOK_REFERENCE = re.compile(r"\bnotebooks? ((?:\d+(?:, | and | or |-|–)?)+)")


def quoted_from(text: str, own: str) -> set[str]:
    """The notebooks whose numbers a markdown cell may quote: its own, and every "notebook N" it names."""
    named = {f"{int(n):02d}" for m in NOTEBOOK_REFERENCE.finditer(text) for n in re.findall(r"\d+", m.group(1))}
    return {own} | named


def check_notebooks(results: dict, notebooks, verdicts: dict | None = None) -> list[str]:
    """Every ``mean ± std`` in a stored notebook must be a recorded quantity, and every verdict its markdown states
    the word the rule gave (:func:`rotlib.verdicts.check_markdown`).

    A pair in a markdown cell (written by hand, so it can go stale) must be a quantity recorded by this notebook
    or by a notebook the cell names ("as notebook 3 measured, ..."), not merely some quantity of the series; a pair
    in an output was printed by the code from the results, and may be any recorded quantity."""
    from .verdicts import check_markdown
    problems = []
    for nb_path in notebooks:
        nb = json.loads(Path(nb_path).read_text())
        own = Path(nb_path).name[:2]
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "markdown":
                source = "".join(cell.get("source", ""))
                if verdicts is not None:
                    problems += check_markdown(source, verdicts, f"{Path(nb_path).name} cell {i}")
                allowed = quoted_from(source, own)
                problems += check_text({k: e for k, e in results.items()
                                        if allowed & set(e.get("notebooks", [e.get("notebook")]))}, source,
                                       f"{Path(nb_path).name} cell {i} (quoting notebooks {sorted(allowed)})")
            texts = []
            if cell["cell_type"] == "markdown" and ("VERDICT" in source or "TODO" in source):
                problems.append(f"{Path(nb_path).name} cell {i}: an unfilled placeholder (VERDICT/TODO)")
            for out in cell.get("outputs", []):
                texts.append("".join(out.get("text", "")))
                texts += ["".join(v) for k, v in out.get("data", {}).items() if k in ("text/plain", "text/markdown")]
            for text in texts:
                problems += check_text(results, text, f"{Path(nb_path).name} cell {i}")
                if "VERDICT" in text or "TODO" in text:
                    problems.append(f"{Path(nb_path).name} cell {i}: an unfilled placeholder (VERDICT/TODO)")
    return sorted(set(problems))


def cross_kind_tolerance(name: str, entry: dict, evidence: dict | None) -> float:
    """The tolerance CI applies to a committed quantity: its own (:func:`tolerance`, or a notebook's ``tol``), and
    at least twice the largest move of its mean seen between the committed run and a run on another CPU kind
    (:func:`rotlib.evidence.largest_mean_shift`)."""
    shift = largest_mean_shift(name, entry["value"], evidence or {})
    return entry["tol"] if shift is None else max(entry["tol"], round(2 * shift, 2))


def compare(fresh: dict, committed: dict, evidence: dict | None = None) -> list[str]:
    """Quantities of the committed file that a fresh run lacks or moved beyond their tolerance
    (:func:`cross_kind_tolerance`, with the ``evidence`` runs on other CPU kinds)."""
    problems = []
    for name, old in sorted(committed.items()):
        new = fresh.get(name)
        tol = cross_kind_tolerance(name, old, evidence)
        if new is None:
            problems.append(f"{name}: committed {old['value']:.2f} but not produced by the fresh run")
        elif abs(new["value"] - old["value"]) > tol:
            problems.append(f"{name}: fresh {new['value']:.2f} vs committed {old['value']:.2f} "
                            f"(tolerance ±{tol:.2f})")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotlib.results", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("table", help="print the README's results table")
    sub.add_parser("readme", help="write the results and claims tables into README.md, the models table into docs/models.md")
    chk = sub.add_parser("check", help="README, docs/ and stored notebooks agree with results/*.json")
    chk.add_argument("--profile", default="quick")
    cmp_ = sub.add_parser("compare", help="a fresh results file against the committed one")
    cmp_.add_argument("fresh", type=Path)
    cmp_.add_argument("committed", type=Path)
    cmp_.add_argument("--evidence", type=Path, default=None,
                      help="a folder of runs on other CPU kinds (default: evidence/<profile>/ beside the committed "
                           "file): each tolerance at least twice the largest deviation seen there")
    args = parser.parse_args(argv)
    from .readme import (checked_pages, generated_pages, models_page_path, readme_path, readme_table,
                         write_models_page, write_readme)
    home = current().home
    if args.cmd == "table":
        print(readme_table())
    elif args.cmd == "readme":
        write_readme()
        write_models_page()
        print(f"wrote the results and claims tables into {readme_path()} and the shipped models table into "
              f"{models_page_path()}")
    elif args.cmd == "check":
        problems = []
        for page, generate in generated_pages():
            if generate(page.read_text()) != page.read_text():
                problems.append(f"{page.relative_to(home)}'s generated tables are not what `make results` generates: "
                                "run `make results`")
        notebooks = sorted((home / "notebooks").glob("[0-9]*.ipynb"))
        problems += check_notebooks(load(args.profile), notebooks, V.load(results_path(args.profile)))
        every = {f"{p}:{k}": v for p in ("quick", "paper") for k, v in load(p).items()}
        pages = checked_pages()
        for page in pages:
            problems += check_text(every, page.read_text(), str(page.relative_to(home)))
        for p in problems:
            print("FAIL", p)
        print(f"check-results: {len(problems)} problem(s) in README.md, {len(pages) - 1} docs/ pages and "
              f"{len(notebooks)} notebooks")
        return 1 if problems else 0
    elif args.cmd == "compare":
        fresh, committed = (json.loads(p.read_text()) for p in (args.fresh, args.committed))
        if args.evidence is not None and not args.evidence.is_dir():
            parser.error(f"--evidence {args.evidence}: no such folder")
        folder = args.evidence or evidence_dir(args.committed)
        evidence = load_runs(folder)
        problems = compare(fresh, committed, evidence)
        old_v, new_v = V.load(args.committed), V.load(args.fresh)
        flips = V.compare(new_v, old_v)
        loose = V.borderline(old_v)
        print(f"evidence: {len(evidence)} run(s) on other CPU kinds in {folder} ({', '.join(evidence) or 'none'})")
        print(f"borderline verdicts (any word within the margin accepted): {len(loose)} of {len(old_v)}")
        for p in problems + flips:
            print("FAIL", p)
        print(f"compare: {len(committed) - len(problems)} of {len(committed)} quantities within tolerance, "
              f"{len(old_v) - len(flips)} of {len(old_v)} verdicts accepted ({len(old_v) - len(loose)} firm: the "
              f"same word)")
        return 1 if problems or flips else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
