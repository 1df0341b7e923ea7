"""One rule for every verdict the series states (notebook 1, "How to read a verdict").

A verdict compares two recorded quantities ``a`` and ``b`` (:class:`rotlib.results.Entry`: one value per seed):

- **paired** (the design gives both sides the same seed: the RotNet of seed s against the random-init network of
  seed s, probed by a classifier of seed s on the same labelled images): the per-seed differences
  d_s = a_s - b_s; the difference is their mean, its standard error sd(d) / sqrt(n);
- **unpaired** (nothing shared between the two sides): the difference of the means, its standard error
  sqrt(sd_a² / n_a + sd_b² / n_b);
- **tie** when |difference| <= 2 standard errors (the threshold, printed with every verdict); else **higher**
  or **lower**;
- against a claim of the paper ("a is higher than b", or lower): **agrees** when ours goes the claimed way beyond
  the threshold, **differs** when it goes the other way beyond it, **tie** otherwise.

With 3 seeds a standard error is itself a rough estimate: a tie means "not resolved at this budget", not "equal".

:func:`judge` applies the rule and records nothing; :func:`state` applies it and records the verdict in
``results/<profile>.verdicts.json`` beside the results file, so that CI can check that a fresh run states the same
words (:func:`compare`) and that a notebook's markdown says the word the rule gave (:func:`check_markdown`: a
verdict in markdown is written ``<!-- verdict: KEY -->**word**``; the comment is invisible when rendered).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .distributed import is_main
from .files import update_json

Z = 2.0                     # a difference within Z standard errors is a tie
CLAIMS = (None, "higher", "lower")
WORDS = ("agrees", "differs", "tie", "higher", "lower")


@dataclass(frozen=True)
class Verdict:
    key: str                 # how markdown refers to it: "<a> vs <b>" unless named
    a: str
    b: str
    paired: bool
    claim: str | None        # the paper's claim: a "higher" / "lower" than b, or None (no claim: a measurement)
    n: int
    diff: float              # a - b, points
    se: float
    threshold: float         # Z * se: a tie within it
    direction: str           # "higher" / "lower" / "tie"
    word: str                # agrees / differs / tie with a claim, else the direction
    paper_diff: float | None = None   # the paper's a - b, where it has both numbers
    label: str = ""          # what is compared, in words (tables)
    notebook: str | None = None

    def __str__(self) -> str:
        how = f"paired over {self.n} seeds" if self.paired else "unpaired"
        claim = f" (paper: {self.claim})" if self.claim else ""
        return (f"{self.word}{claim}: {self.diff:+.2f} points, {how}; standard error {self.se:.2f}, "
                f"tie threshold {self.threshold:.2f}")


def judge(a: dict, b: dict, *, paired: bool, claim: str | None = None, key: str | None = None, label: str = "",
          notebook: str | None = None) -> Verdict:
    """The rule applied to two recorded quantities (nothing is recorded)."""
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {CLAIMS} (the paper's: a higher or lower than b), got {claim!r}")
    va, vb = list(a["values"]), list(b["values"])
    if paired:
        if len(va) != len(vb):
            raise ValueError(f"a paired verdict needs one value per seed on both sides, got {len(va)} and {len(vb)}")
        d = [x - y for x, y in zip(va, vb)]
        n = len(d)
        if n < 2:
            raise ValueError("a verdict needs at least 2 seeds: with one, the spread is unknown")
        diff = sum(d) / n
        se = math.sqrt(sum((x - diff) ** 2 for x in d) / (n - 1) / n)
    else:
        if min(len(va), len(vb)) < 2:
            raise ValueError("a verdict needs at least 2 seeds on each side: with one, the spread is unknown")
        n = min(len(va), len(vb))
        ma, mb = sum(va) / len(va), sum(vb) / len(vb)
        sa = sum((x - ma) ** 2 for x in va) / (len(va) - 1)
        sb = sum((x - mb) ** 2 for x in vb) / (len(vb) - 1)
        diff, se = ma - mb, math.sqrt(sa / len(va) + sb / len(vb))
    diff, se = round(diff, 2), round(se, 2)
    threshold = round(Z * se, 2)
    direction = "tie" if abs(diff) <= threshold else ("higher" if diff > 0 else "lower")
    word = direction if claim is None else ("tie" if direction == "tie" else
                                            "agrees" if direction == claim else "differs")
    paper_diff = round(a["paper"] - b["paper"], 2) if a.get("paper") is not None and b.get("paper") is not None \
        else None
    return Verdict(key or f"{a['name']} vs {b['name']}", a["name"], b["name"], paired, claim, n, diff, se, threshold,
                   direction, word, paper_diff, label, notebook or a.get("notebook"))


def verdicts_path(results_file: Path) -> Path:
    """The verdicts beside a results file: ``quick.json`` -> ``quick.verdicts.json``."""
    return Path(results_file).with_suffix(".verdicts.json")


def state(a: dict, b: dict, *, paired: bool, claim: str | None = None, key: str | None = None, label: str = "",
          notebook: str | None = None) -> Verdict:
    """:func:`judge`, and record the verdict beside ``a``'s results file (the word a notebook may state; written
    where :func:`rotlib.results.record_dir` says)."""
    from .results import record_dir, results_path
    v = judge(a, b, paired=paired, claim=claim, key=key, label=label, notebook=notebook)
    if a.get("profile") and is_main():
        update_json(verdicts_path(results_path(a["profile"], record_dir())), v.key, asdict(v))
    return v


def load(results_file: Path) -> dict:
    """The recorded verdicts beside a results file ({} when none)."""
    path = verdicts_path(results_file)
    return json.loads(path.read_text()) if path.exists() else {}


def table(verdicts, perturbed: dict | None = None):
    """The claims of a notebook as a pandas table: what is compared, the paper's difference where it has both
    numbers, ours, the threshold and the verdict (one row per verdict, as the rule gave it). ``perturbed``: the
    values of a run with other kernels (``results/quick-fp32eval.json``); a verdict to which the rule gives another
    word on them is marked fragile."""
    import pandas as pd
    rows = {}
    for v in verdicts:
        rows[v.label or v.key] = {"paper's claim": v.claim or "—",
                                  "paper: difference": "—" if v.paper_diff is None else f"{v.paper_diff:+.2f}",
                                  "ours: difference (points)": f"{v.diff:+.2f}",
                                  "tie threshold (2 SE)": f"{v.threshold:.2f}",
                                  "design": f"paired, {v.n} seeds" if v.paired else "unpaired",
                                  "verdict": shown_word(asdict(v), perturbed)}
    return pd.DataFrame(rows).T


def compare(fresh: dict, committed: dict, perturbed_results: dict | None = None) -> list[str]:
    """Verdicts the committed notebooks state that a fresh run states differently or not at all.

    ``perturbed_results``: the quantities of a run with other kernels (``results/quick-fp32eval.json``); where the
    rule applied to its values gives another word, the verdict is fragile (it may flip on another CPU kind) and
    either word is accepted."""
    problems = []
    for key, old in sorted(committed.items()):
        new = fresh.get(key)
        allowed = {old["word"]} | ({w} if (w := perturbed_word(old, perturbed_results)) else set())
        if new is None:
            problems.append(f"verdict {key}: committed {old['word']!r} but not stated by the fresh run")
        elif new["word"] not in allowed:
            problems.append(f"verdict {key}: fresh {new['word']!r} ({new['diff']:+.2f}, threshold "
                            f"{new['threshold']:.2f}) vs committed {old['word']!r} ({old['diff']:+.2f}, threshold "
                            f"{old['threshold']:.2f})")
    return problems


def perturbed_word(verdict: dict, perturbed_results: dict | None) -> str | None:
    """The word the rule gives on the perturbed run's values of the same two quantities (None: not measured there)."""
    if not perturbed_results or verdict["a"] not in perturbed_results or verdict["b"] not in perturbed_results:
        return None
    return judge(perturbed_results[verdict["a"]], perturbed_results[verdict["b"]], paired=verdict["paired"],
                 claim=verdict["claim"]).word


def shown_word(verdict: dict, perturbed_results: dict | None) -> str:
    """The verdict's word as the claims tables show it: marked fragile where the perturbed run's values give
    another word."""
    other = perturbed_word(verdict, perturbed_results)
    return verdict["word"] if other in (None, verdict["word"]) else \
        f"{verdict['word']} (fragile: {other} with fp32 evaluation)"


def fragile(committed: dict, perturbed_results: dict) -> list[str]:
    """The committed verdicts to which the perturbed run's values give another word."""
    return sorted(k for k, v in committed.items() if perturbed_word(v, perturbed_results) not in (None, v["word"]))


MARKED = re.compile(r"<!--\s*verdict:\s*(.+?)\s*-->\s*\*\*(?:[^*:]*verdict[^*:]*:\s*)?([A-Za-z]+)", re.IGNORECASE)
BOLD_WORD = re.compile(r"\*\*(?:[^*:]*verdict[^*:]*:\s*)?(agrees|differs|tie)\b", re.IGNORECASE)
TABLE_WORD = re.compile(r"^\|.*\|\s*\**(agrees|differs|tie)\b[^|]*\|\s*$", re.IGNORECASE | re.MULTILINE)


def check_markdown(text: str, verdicts: dict, where: str) -> list[str]:
    """A verdict word in markdown must be the word the rule gave: ``<!-- verdict: KEY -->**word**`` with KEY a
    recorded verdict; a bold agrees / differs / tie without the marker, or a verdict column in a markdown table,
    is refused (the claims table comes from :func:`table`)."""
    problems, marked = [], set()
    for m in MARKED.finditer(text):
        key, word = m.group(1), m.group(2).lower()
        marked.add(m.start(2))
        if key not in verdicts:
            problems.append(f"{where}: verdict {key!r} is not recorded (no rotlib.verdicts.state call states it)")
        elif word != verdicts[key]["word"]:
            problems.append(f"{where}: says **{word}** for {key!r}, the rule gave {verdicts[key]['word']!r} "
                            f"({verdicts[key]['diff']:+.2f}, threshold {verdicts[key]['threshold']:.2f})")
    for m in BOLD_WORD.finditer(text):
        if m.start(1) not in marked:
            problems.append(f"{where}: '{m.group(0)}**' states a verdict without its marker <!-- verdict: KEY -->")
    for m in TABLE_WORD.finditer(text):
        problems.append(f"{where}: a verdict in a markdown table ('{m.group(0).strip()[:60]}'): show the claims "
                        "with rotlib.verdicts.table instead")
    return problems
