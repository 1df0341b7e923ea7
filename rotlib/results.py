"""Every number the series reports, in one file per profile: ``results/<profile>.json``.

Notebooks compute a quantity once (cached, see :mod:`rotlib.experiments`)
and :func:`record` it here under a stable name, e.g.
``table1.nonlinear.rotnet.conv2``, with its per-seed values, their mean,
standard deviation and count, and the paper's number where there is one.
The README's results table is generated from these files (``make results``)
and ``make check-results`` checks that the README and every "mean ± std"
printed in a stored notebook agree with them. CI re-executes the notebooks
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
from .files import update_json
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


def results_name(profile) -> str:
    """Where a profile's numbers are filed: its own name for a registered profile as registered (``quick``,
    ``paper``; the device does not count), else ``scratch/<name>-<hash of its settings>``. So an exercise that
    changes a profile (more seeds, fewer epochs, another dataset) never writes into the committed
    ``results/quick.json``; ``results/scratch/`` is not committed."""
    import hashlib
    from .profiles import PROFILES
    mine = {k: v for k, v in profile.as_dict().items() if k != "device"}
    registered = PROFILES.get(profile.name)
    if registered is not None and {k: v for k, v in registered.as_dict().items() if k != "device"} == mine:
        return profile.name
    digest = hashlib.sha256(json.dumps(mine, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"scratch/{profile.name}-{digest}"


def load(profile_name: str = "quick", folder: Path | None = None) -> dict:
    """The recorded quantities of a profile ({} when none were recorded)."""
    path = results_path(profile_name, folder)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); restore it with `git checkout -- {path}` "
                         "or delete it and re-run the notebooks") from None


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


# ---------------------------------------------------------------- the README's table
# (row label, quantity names joined by " / ") in reading order; rows whose quantities are all absent are skipped.
README_ROWS = [
    ("rotation accuracy (test, 4 rotations)", ["rotation_accuracy"]),
    ("Table 1, RotNet + non-linear, conv1 / conv2 / conv3 / conv4",
     [f"table1.nonlinear.rotnet.conv{b}" for b in range(1, 5)]),
    ("same, random-init features", [f"table1.nonlinear.random.conv{b}" for b in range(1, 5)]),
    ("same classifier on raw pixels", ["pixels.nonlinear"]),
    ("Table 1, RotNet + linear, conv1 / conv2 / conv3 / conv4", [f"table1.linear.rotnet.conv{b}" for b in range(1, 5)]),
    ("Table 3, supervised NIN", ["table3.supervised"]),
    ("Table 3, random init + conv", ["table3.random_conv"]),
    ("Table 3, RotNet + non-linear", ["table3.rotnet_nonlinear"]),
    ("Table 3, RotNet + conv", ["table3.rotnet_conv"]),
    ("Table 2 (ablation budget), 4 rotations", ["table2.4"]),
    ("Table 2 (ablation budget), 8 rotations (45° steps)", ["table2.8"]),
    ("Table 2 (ablation budget), 2 rotations (0/180)", ["table2.2-0/180"]),
    ("Table 2 (ablation budget), 2 rotations (90/270)", ["table2.2-90/270"]),
    ("Fig. 5(b), 20 labels/class: RotNet + conv / supervised", ["fig5.rotnet.20", "fig5.supervised.20"]),
    ("Fig. 5(b), 100 labels/class: RotNet + conv / supervised", ["fig5.rotnet.100", "fig5.supervised.100"]),
    ("Fig. 5(b), all labels (paper: 5,000 per class; ours: 500): RotNet + conv / supervised", ["fig5.rotnet.all", "fig5.supervised.all"]),
    ("all 4 rotations per batch / 1 random rotation (ablation budget), conv2 non-linear, all labels",
     ["batching.all4.all", "batching.random1.all"]),
    ("Fig. 5(a), seed 0: rotation accuracy after 1 / 2 / 4 / 8 / 16 / 24 / 32 epochs",
     [f"fig5a.rotation_accuracy.epoch{e:02d}" for e in (1, 2, 4, 8, 16, 24, 32)]),
    ("Fig. 5(a), seed 0: conv2 non-linear probe after 1 / 2 / 4 / 8 / 16 / 24 / 32 epochs",
     [f"fig5a.probe.epoch{e:02d}" for e in (1, 2, 4, 8, 16, 24, 32)]),
    ("orient tool (notebook 8): accuracy on test images x 4 turns, one pass / with test-time augmentation",
     ["orient.accuracy", "orient.accuracy.tta"]),
    ("orient tool at confidence 0.9: share of images it acts on / accuracy on those",
     ["orient.threshold0.9.coverage", "orient.threshold0.9.accuracy"]),
]
TABLE_START, TABLE_END = "<!-- results table: generated by `make results`, do not edit -->", "<!-- end of results table -->"


def _cell(results: dict, names: list[str], with_std: bool = True) -> str:
    parts = []
    for n in names:
        e = results.get(n)
        if e is None:
            parts.append("—")
        elif with_std and e["n"] > 1:
            parts.append(f"{e['value']:.1f} ± {e['std']:.1f}")
        else:                                      # one run: no spread to show
            parts.append(f"{e['value']:.1f}" if with_std else f"{e['value']:.2f}")
    return " / ".join(parts)


def _paper_cell(results: dict, names: list[str]) -> str:
    papers = [results.get(n, {}).get("paper") for n in names]
    return "—" if all(p is None for p in papers) else " / ".join("—" if p is None else f"{p:.2f}" for p in papers)


def readme_table(profiles=("quick", "paper"), folder: Path | None = None) -> str:
    """The markdown results table: the paper's numbers beside ours, one column per profile that has results."""
    data = {p: load(p, folder) for p in profiles}
    cols = [p for p in profiles if data[p]]
    if not cols:
        raise ValueError(f"no results in {folder or results_dir()}: execute the notebooks first (make notebooks)")
    merged = {k: v for p in reversed(cols) for k, v in data[p].items()}
    header = ["result", "paper (CIFAR-10)"] + [
        f"ours, `{p}` ({next(iter(data[p].values()))['dataset']}), mean ± std" for p in cols]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(cols)]
    for label, names in README_ROWS:
        if not any(n in data[p] for p in cols for n in names):
            continue
        lines.append("| " + " | ".join([label, _paper_cell(merged, names)] + [_cell(data[p], names) for p in cols]) + " |")
    ns = sorted({e["n"] for p in cols for e in data[p].values()})
    lines.append("")
    lines.append(f"Each cell is the mean ± standard deviation over n = {max(ns)} runs (RotNet seeds; a cell without ± is "
                 "one run; see `results/*.json` for every value and its n).")
    return "\n".join(lines)


MODELS_START, MODELS_END = "<!-- shipped models: generated by `make results`, do not edit -->", "<!-- end of shipped models -->"


def models_table() -> str:
    """The shipped models (models/*.json manifests) as a markdown table: what each is, its training time, where."""
    from .shipped import models_dir
    manifests = [json.loads(p.read_text()) for p in sorted(models_dir().glob("*.json"))]
    if not manifests:
        return "No models are shipped yet: run `make models`."
    rows = {}
    for m in manifests:
        group = m["label"].rsplit(", seed ", 1)[0].replace(" (with snapshots)", "")
        rows.setdefault(group, []).append(m)
    lines = ["| model | seeds | epochs | training time per model (s) | trained on |", "|---|---:|---:|---:|---|"]
    for group, ms in rows.items():
        secs = [m["train_seconds"] for m in ms]
        cpus = sorted({m["trained_by"]["machine"]["cpu"] for m in ms})
        lines.append(f"| {group} | {len(ms)} | {len(ms[0]['history']['epoch_loss'])} | "
                     f"{min(secs):.0f}-{max(secs):.0f} | {', '.join(cpus)} |")
    total = sum(m["train_seconds"] for m in manifests)
    size = sum(p.stat().st_size for p in models_dir().rglob("*") if p.is_file())
    lines.append("")
    lines.append(f"{len(manifests)} models, {total / 60:.0f} min of training in all on "
                 f"{manifests[0]['trained_by']['machine']['cores']} CPU cores, {size / 1e6:.1f} MB in `models/` "
                 "(with the snapshots of Fig. 5(a)).")
    return "\n".join(lines)


CLAIMS_START, CLAIMS_END = "<!-- claims: generated by `make results`, do not edit -->", "<!-- end of claims -->"


def claims_table(profile: str = "quick", folder: Path | None = None) -> str:
    """The verdicts the notebooks state on the paper's claims (``results/<profile>.verdicts.json``), as a markdown
    table in notebook order: the claim, the paper's difference, ours, the tie threshold and the word the rule gave;
    where the rule gives another word on the values of the fp32-evaluation run (``results/<profile>-fp32eval.json``),
    the verdict is marked fragile."""
    verdicts = [v for v in V.load(results_path(profile, folder)).values() if v.get("claim")]
    if not verdicts:
        return "No verdicts are recorded yet: run `make notebooks`."
    perturbed = load(f"{profile}-fp32eval", folder)
    lines = ["| notebook | the paper's claim | paper: difference | ours: difference (points) | tie threshold | verdict |",
             "|---|---|---:|---:|---:|---|"]
    for v in sorted(verdicts, key=lambda v: (v["notebook"] or "", v["label"] or v["key"])):
        paper = "—" if v.get("paper_diff") is None else f"{v['paper_diff']:+.2f}"
        lines.append(f"| {v['notebook']} | {v['label'] or v['key']} | {paper} | {v['diff']:+.2f} | {v['threshold']:.2f} | "
                     f"{V.shown_word(v, perturbed)} |")
    lines.append("")
    lines.append("Difference: a − b in points, paired over the seeds; a tie is within the threshold of two standard "
                 "errors (notebook 1, \"How to read a verdict\"). Fragile: the same rule gives another word on the values "
                 "of the run with fp32 instead of bf16 evaluation, a stand-in for another CPU kind.")
    return "\n".join(lines)


def _splice(text: str, table: str, start: str = TABLE_START, end: str = TABLE_END) -> str:
    if start not in text or end not in text:
        raise ValueError(f"README.md lacks the markers {start!r} ... {end!r}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"


def readme_text(text: str) -> str:
    """README.md's text with its generated tables (results, shipped models, claims) as `make results` writes them."""
    text = _splice(_splice(text, readme_table()), models_table(), MODELS_START, MODELS_END)
    return _splice(text, claims_table(), CLAIMS_START, CLAIMS_END)


def readme_path() -> Path:
    return current().home / "README.md"


def write_readme(readme: Path | None = None) -> None:
    readme = readme or readme_path()
    readme.write_text(readme_text(readme.read_text()))


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


def compare(fresh: dict, committed: dict, perturbed: dict | None = None) -> list[str]:
    """Quantities of the committed file that a fresh run lacks or moved beyond their tolerance.

    ``perturbed``: the same quantities measured with other kernels (the committed ``quick-fp32eval`` run: every
    evaluation in fp32 instead of bf16, a stand-in for another CPU kind); a quantity's tolerance is then at least
    twice how far that run moved it."""
    problems = []
    for name, old in sorted(committed.items()):
        new = fresh.get(name)
        tol = old["tol"]
        if perturbed and name in perturbed:
            tol = max(tol, round(2 * abs(perturbed[name]["value"] - old["value"]), 2))
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
    sub.add_parser("readme", help="write the results table into README.md")
    chk = sub.add_parser("check", help="README table and stored notebooks agree with results/*.json")
    chk.add_argument("--profile", default="quick")
    cmp_ = sub.add_parser("compare", help="a fresh results file against the committed one")
    cmp_.add_argument("fresh", type=Path)
    cmp_.add_argument("committed", type=Path)
    cmp_.add_argument("--perturbed", type=Path, default=None,
                      help="the committed run with other kernels (results/quick-fp32eval.json): tolerances at least "
                           "twice its deviation, and either verdict word where the rule gives another on its values")
    args = parser.parse_args(argv)
    if args.cmd == "table":
        print(readme_table())
    elif args.cmd == "readme":
        write_readme()
        print(f"wrote the results table into {readme_path()}")
    elif args.cmd == "check":
        problems, README = [], readme_path()
        if readme_text(README.read_text()) != README.read_text():
            problems.append("README.md's results or models table is not what `make results` generates: run "
                            "`make results`")
        notebooks = sorted((current().home / "notebooks").glob("[0-9]*.ipynb"))
        problems += check_notebooks(load(args.profile), notebooks, V.load(results_path(args.profile)))
        every = {f"{p}:{k}": v for p in ("quick", "paper") for k, v in load(p).items()}
        problems += check_text(every, README.read_text(), "README.md")
        for p in problems:
            print("FAIL", p)
        print(f"check-results: {len(problems)} problem(s) in README.md and {len(notebooks)} notebooks")
        return 1 if problems else 0
    elif args.cmd == "compare":
        fresh, committed = (json.loads(p.read_text()) for p in (args.fresh, args.committed))
        perturbed = json.loads(args.perturbed.read_text()) if args.perturbed else None
        problems = compare(fresh, committed, perturbed)
        old_v, new_v = V.load(args.committed), V.load(args.fresh)
        flips = V.compare(new_v, old_v, perturbed)
        if perturbed:
            print(f"fragile verdicts (the rule gives another word on the fp32-evaluation run's values): "
                  f"{V.fragile(old_v, perturbed) or 'none'}")
        for p in problems + flips:
            print("FAIL", p)
        print(f"compare: {len(committed) - len(problems)} of {len(committed)} quantities within tolerance, "
              f"{len(old_v) - len(flips)} of {len(old_v)} verdicts the same")
        return 1 if problems or flips else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
