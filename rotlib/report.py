"""The checks and the command line of the results: ``python -m rotlib.report {table,readme,check,compare}``.

Above the store (:mod:`rotlib.results`), the verdicts (:mod:`rotlib.verdicts`) and the README's generated tables
(:mod:`rotlib.readme`):

- ``check`` (``make check-results``): the README's and docs/models.md's generated tables are what ``make results``
  writes, and every "mean ± std" in README.md, docs/*.md and the stored notebooks is a recorded quantity, every
  verdict the markdown states the word the rule gave;
- ``compare`` (``make test``): a fresh results file against the committed one, within tolerances widened by the
  runs on other CPU kinds (:mod:`rotlib.evidence`), and no firm verdict changed;
- ``readme`` (``make results``) and ``table``: write or print the generated tables;
- ``requote OLD.json``: after ``make notebooks`` recorded the results again, rewrite the hand-written quotes of the
  old numbers in the notebooks' markdown, README.md and docs/ (:mod:`rotlib.requote`), and list what to check.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from . import verdicts as V
from .evidence import evidence_dir, largest_mean_shift, load_runs
from .readme import (checked_pages, generated_pages, models_page_path, readme_path, readme_table, write_models_page,
                     write_readme)
from .requote import PAIR, requote_text
from .results import load, results_path
from .settings import current


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
    problems = []
    for nb_path in notebooks:
        nb = json.loads(Path(nb_path).read_text())
        own = Path(nb_path).name[:2]
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "markdown":
                source = "".join(cell.get("source", ""))
                if verdicts is not None:
                    problems += V.check_markdown(source, verdicts, f"{Path(nb_path).name} cell {i}")
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
    """The tolerance CI applies to a committed quantity: its own (:func:`rotlib.results.tolerance`, or a notebook's
    ``tol``), and at least twice the largest move of its mean seen between the committed run and a run on another CPU kind
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


def _own_quantities(results: dict, allowed: set[str]) -> dict:
    """The quantities a markdown cell may quote: recorded by one of the ``allowed`` notebooks."""
    return {k: e for k, e in results.items() if allowed & set(e.get("notebooks", [e.get("notebook")]))}


def requote(old_file: Path, profile: str = "quick", write: bool = True) -> tuple[int, list[str]]:
    """Rewrite the quotes of ``old_file``'s numbers (and of its verdicts) by the committed results' in the stored
    notebooks' markdown cells, README.md and docs/*.md; return how many changed and what a person must check."""
    import nbformat                                     # the notebooks' own reader and writer (their format kept)
    old, new = json.loads(Path(old_file).read_text()), load(profile)
    old_v, new_v = V.load(Path(old_file)), V.load(results_path(profile))
    home, changed, check = current().home, 0, []
    for path in sorted((home / "notebooks").glob("[0-9]*.ipynb")):
        nb, own, edited = nbformat.read(path, as_version=4), path.name[:2], False
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "markdown":
                continue
            allowed = quoted_from(cell.source, own)
            done = requote_text(cell.source, _own_quantities(old, allowed), _own_quantities(new, allowed), old_v,
                                new_v, V.stated_word)
            changed += done.changed
            check += [f"{path.name} cell {i}: {c}" for c in done.check]
            if done.text != cell.source:
                cell.source, edited = done.text, True
        if edited and write:
            nbformat.write(nb, path)
    for page in checked_pages():
        done = requote_text(page.read_text(), old, new, old_v, new_v, V.stated_word)
        changed += done.changed
        check += [f"{page.relative_to(home)}: {c}" for c in done.check]
        if write and done.changed:
            page.write_text(done.text)
    return changed, check


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotlib.report", description=__doc__.split("\n\n")[0])
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
    req = sub.add_parser("requote", help="after make notebooks: rewrite the markdown's quotes of the old results")
    req.add_argument("old", type=Path, help="the results file as it was (its .verdicts.json beside it)")
    req.add_argument("--profile", default="quick")
    req.add_argument("--dry-run", action="store_true", help="only say what would change")
    args = parser.parse_args(argv)
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
    elif args.cmd == "requote":
        changed, check = requote(args.old, args.profile, write=not args.dry_run)
        for c in check:
            print("CHECK", c)
        print(f"requote: {changed} quote(s) {'would change' if args.dry_run else 'changed'}; {len(check)} place(s) "
              "for a person to check; then `make results` and `make check-results`")
        return 0
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
