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

**Firm or borderline** (the margin rule). The shipped models are the same on every machine, but the probes trained
on them pick up each CPU kind's rounding, so both the difference and the threshold move a little between CPU kinds.
The *clearance* |difference| - threshold says how far a verdict is from the other word. From the runs on other CPU
kinds (:mod:`rotlib.evidence`), each seed's value of quantity q moves by about delta_q (root mean square); then the
difference moves with a standard deviation s_diff = sqrt(delta_a^2 / n_a + delta_b^2 / n_b), the threshold with
s_thr = Z * s_diff / sqrt(n - 1) (a standard deviation of n values moves by about delta / sqrt(n - 1)), the clearance
with s = sqrt(s_diff^2 + s_thr^2). The **margin** is ``MARGIN`` * s: a verdict is **firm** when its clearance is
beyond the margin either way (a resolved difference clears the threshold by more than the margin, a tie stays
inside it by as much); otherwise it is **borderline**, its word holds on this CPU only, and CI accepts any word
the difference can reach within the margin. ``MARGIN`` is at least twice the largest clearance move seen in
the evidence, in units of s (``tests/test_verdicts.py::test_the_margin_covers_the_evidence`` recomputes it, and
checks each run against the margins the other runs give). For an unpaired verdict of n_a and n_b seeds, n is the
smaller (a wider margin).

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
from .evidence import committed_evidence_dir, load_runs, seed_shift
from .files import update_json
from .results import record_dir, results_path

Z = 2.0                     # a difference within Z standard errors is a tie
MARGIN = 5.5                # a verdict is firm when its clearance is beyond MARGIN standard deviations of its move
                            # between CPU kinds: at least twice the largest move seen (2.63; docs/every-cpu-kind.md)
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
    margin: float = 0.0      # MARGIN standard deviations of the clearance's move between CPU kinds
    firm: bool = True        # |diff| - threshold beyond the margin, either way

    def __str__(self) -> str:
        how = f"paired over {self.n} seeds" if self.paired else "unpaired"
        claim = f" (paper: {self.claim})" if self.claim else ""
        return (f"{shown_word(asdict(self))}{claim}: {self.diff:+.2f} points, {how}; standard error {self.se:.2f}, "
                f"tie threshold {self.threshold:.2f}, margin {self.margin:.2f}")


def margin(a: dict, b: dict, n: int, evidence: dict | None) -> float:
    """MARGIN standard deviations of how far the clearance |diff| - threshold moves between CPU kinds, from how far
    each seed's value of ``a`` and ``b`` moves in the ``evidence`` runs (:func:`rotlib.evidence.seed_shift`)."""
    da, db = seed_shift(a, evidence or {}), seed_shift(b, evidence or {})
    s_diff = math.sqrt(da ** 2 / len(a["values"]) + db ** 2 / len(b["values"]))
    s_thr = Z * s_diff / math.sqrt(n - 1)
    return round(MARGIN * math.sqrt(s_diff ** 2 + s_thr ** 2), 2)


def judge(a: dict, b: dict, *, paired: bool, claim: str | None = None, key: str | None = None, label: str = "",
          notebook: str | None = None, evidence: dict | None = None) -> Verdict:
    """The rule applied to two recorded quantities (nothing is recorded). ``evidence``: runs on other CPU kinds
    (:func:`rotlib.evidence.load_runs`) for the margin; without them each quantity's seed-to-seed spread stands in
    for its move between kinds (a wide margin)."""
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
    m = margin(a, b, n, evidence)
    firm = abs(abs(diff) - threshold) > m
    return Verdict(key or f"{a['name']} vs {b['name']}", a["name"], b["name"], paired, claim, n, diff, se, threshold,
                   direction, word, paper_diff, label, notebook or a.get("notebook"), m, firm)


def verdicts_path(results_file: Path) -> Path:
    """The verdicts beside a results file: ``quick.json`` -> ``quick.verdicts.json``."""
    return Path(results_file).with_suffix(".verdicts.json")


def state(a: dict, b: dict, *, paired: bool, claim: str | None = None, key: str | None = None, label: str = "",
          notebook: str | None = None, evidence: dict | None = None) -> Verdict:
    """:func:`judge`, and record the verdict beside ``a``'s results file (the word a notebook may state; written
    where :func:`rotlib.results.record_dir` says). ``evidence``: default the runs of ``a``'s profile on other CPU
    kinds in the checkout (``results/evidence/<profile>/``)."""
    if evidence is None and a.get("profile"):
        evidence = load_runs(committed_evidence_dir(a["profile"]))
    v = judge(a, b, paired=paired, claim=claim, key=key, label=label, notebook=notebook, evidence=evidence)
    if a.get("profile") and is_main():
        update_json(verdicts_path(results_path(a["profile"], record_dir())), v.key, asdict(v))
    return v


def load(results_file: Path) -> dict:
    """The recorded verdicts beside a results file ({} when none)."""
    path = verdicts_path(results_file)
    return json.loads(path.read_text()) if path.exists() else {}


def table(verdicts):
    """The claims of a notebook as a pandas table: what is compared, the paper's difference where it has both
    numbers, ours, the threshold, the margin and the verdict (one row per verdict, as the rule gave it; a
    borderline one says so)."""
    import pandas as pd
    rows = {}
    for v in verdicts:
        rows[v.label or v.key] = {"paper's claim": v.claim or "—",
                                  "paper: difference": "—" if v.paper_diff is None else f"{v.paper_diff:+.2f}",
                                  "ours: difference (points)": f"{v.diff:+.2f}",
                                  "tie threshold (2 SE)": f"{v.threshold:.2f}",
                                  "margin": f"{v.margin:.2f}",
                                  "design": f"paired, {v.n} seeds" if v.paired else "unpaired",
                                  "verdict": shown_word(asdict(v))}
    return pd.DataFrame(rows).T


def is_firm(verdict: dict) -> bool:
    """A recorded verdict's firmness (one recorded before the margin rule counts as firm)."""
    return verdict.get("firm", True)


def shown_word(verdict: dict) -> str:
    """The verdict's word as the notebooks' and README's claims tables show it: "borderline: agrees on this CPU"
    where it is not firm."""
    return verdict["word"] if is_firm(verdict) else f"borderline: {verdict['word']} on this CPU"


def stated_word(verdict: dict) -> str:
    """The word a notebook's markdown states for a recorded verdict: its word when firm, else "borderline" (the
    word itself may differ on another CPU kind)."""
    return verdict["word"] if is_firm(verdict) else "borderline"


def accepted_words(verdict: dict) -> set[str]:
    """The words CI accepts from a fresh run for a committed verdict: every word the difference can reach when the
    clearance moves by up to the margin (higher: diff + margin > threshold; lower: diff - margin < -threshold; tie:
    |diff| - margin <= threshold). A firm verdict reaches only its own word; a borderline one also the word across
    its threshold, and the opposite word too where the margin is wider than |diff| + threshold."""
    diff, threshold, m = verdict["diff"], verdict["threshold"], verdict.get("margin", 0.0)
    reachable = {d for d, ok in (("higher", diff + m > threshold), ("lower", diff - m < -threshold),
                                 ("tie", abs(diff) - m <= threshold)) if ok} or {verdict["direction"]}
    claim = verdict.get("claim")
    return {d if claim is None or d == "tie" else ("agrees" if d == claim else "differs") for d in reachable}


def compare(fresh: dict, committed: dict) -> list[str]:
    """Verdicts the committed notebooks state that a fresh run states with a word CI does not accept
    (:func:`accepted_words`: a firm verdict must keep its word, a borderline one may take any word within its
    margin) or not at all."""
    problems = []
    for key, old in sorted(committed.items()):
        new = fresh.get(key)
        if new is None:
            problems.append(f"verdict {key}: committed {old['word']!r} but not stated by the fresh run")
        elif new["word"] not in accepted_words(old):
            problems.append(f"verdict {key}: fresh {new['word']!r} ({new['diff']:+.2f}, threshold "
                            f"{new['threshold']:.2f}) vs committed {'firm' if is_firm(old) else 'borderline'} "
                            f"{old['word']!r} ({old['diff']:+.2f}, threshold {old['threshold']:.2f}, margin "
                            f"{old.get('margin', 0.0):.2f})")
    return problems


def borderline(committed: dict) -> list[str]:
    """The committed verdicts that are not firm."""
    return sorted(k for k, v in committed.items() if not is_firm(v))


MARKED = re.compile(r"<!--\s*verdict:\s*(.+?)\s*-->\s*\*\*(?:[^*:]*verdict[^*:]*:\s*)?([A-Za-z]+)", re.IGNORECASE)
BOLD_WORD = re.compile(r"\*\*(?:[^*:]*verdict[^*:]*:\s*)?(agrees|differs|tie|borderline)\b", re.IGNORECASE)
TABLE_WORD = re.compile(r"^\|.*\|\s*\**(agrees|differs|tie|borderline)\b[^|]*\|\s*$", re.IGNORECASE | re.MULTILINE)


def check_markdown(text: str, verdicts: dict, where: str) -> list[str]:
    """A verdict word in markdown must be the word the rule gave: ``<!-- verdict: KEY -->**word**`` with KEY a
    recorded verdict, and **borderline** where the verdict is not firm (:func:`stated_word`); a bold agrees /
    differs / tie / borderline without the marker, or a verdict column in a markdown table, is refused (the claims
    table comes from :func:`table`)."""
    problems, marked = [], set()
    for m in MARKED.finditer(text):
        key, word = m.group(1), m.group(2).lower()
        marked.add(m.start(2))
        if key not in verdicts:
            problems.append(f"{where}: verdict {key!r} is not recorded (no rotlib.verdicts.state call states it)")
        elif word != stated_word(verdicts[key]):
            v = verdicts[key]
            problems.append(f"{where}: says **{word}** for {key!r}, the rule gave {stated_word(v)!r} "
                            f"({shown_word(v)}: {v['diff']:+.2f}, threshold {v['threshold']:.2f}, "
                            f"margin {v.get('margin', 0.0):.2f})")
    for m in BOLD_WORD.finditer(text):
        if m.start(1) not in marked:
            problems.append(f"{where}: '{m.group(0)}**' states a verdict without its marker <!-- verdict: KEY -->")
    for m in TABLE_WORD.finditer(text):
        problems.append(f"{where}: a verdict in a markdown table ('{m.group(0).strip()[:60]}'): show the claims "
                        "with rotlib.verdicts.table instead")
    return problems
