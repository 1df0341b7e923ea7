"""Re-quote the numbers hand-written text takes from the results, after ``make notebooks`` records them again.

The markdown of the notebooks, README.md and docs/ quotes recorded quantities ("62.00 ± 0.56") and verdicts
("<!-- verdict: a vs b -->**agrees** (+13.50 points, threshold 2.22, margin 5.46)"). Re-executed on another CPU
kind or with a changed protocol, the notebooks record new values, and every such quote goes stale. ``python -m
rotlib.report requote OLD.json`` (the results file as it was, its ``OLD.verdicts.json`` beside it) rewrites, in
place:

- every ``mean ± std`` whose old value identifies its quantities (among those the text may quote, as
  :func:`rotlib.report.check_notebooks` allows): all candidates give the same new pair, at the printed precision;
- in the parenthesis after a verdict marker, the old difference, ``threshold`` and ``margin`` by the new ones.

What it cannot decide it lists for a person: an ambiguous pair, a verdict whose stated word changed, and every
other number in the text that equals an old value of a quantity or an old verdict's difference that moved (a
difference quoted in prose), and every list of a moved quantity's old per-seed values. It never touches code cells
or outputs (re-executed, they are new already).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

PAIR = re.compile(r"(-?\d+(?:\.(\d+))?)\s*±\s*(\d+(?:\.(\d+))?)")
MARKER = re.compile(r"<!--\s*verdict:\s*(.+?)\s*-->\s*\*\*(?:[^*:]*verdict[^*:]*:\s*)?([A-Za-z]+)", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])([+−-]?)(\d+\.\d\d)(?![\d])")


@dataclass
class Requoted:
    """What :func:`requote_text` did: the new text, how many quotes it changed, what a person must check."""
    text: str
    changed: int = 0
    check: list[str] = field(default_factory=list)


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def new_pair(mean: str, std: str, old: dict, new: dict) -> set[str] | None:
    """The new ``mean ± std`` strings for a printed old pair: one per quantity whose old (value, std) it prints (at
    its precision; a printed difference may be b - a, the sign flipped), or None when no quantity matches."""
    dm, ds = len(mean.partition(".")[2]), len(std.partition(".")[2])
    out = set()
    for name, e in old.items():
        if name not in new or _fmt(e["std"], ds) != std:
            continue
        for sign in (1, -1):
            if _fmt(sign * e["value"], dm) == mean:
                out.add(f"{_fmt(sign * new[name]['value'], dm)} ± {_fmt(new[name]['std'], ds)}")
    return out or None


def _verdict_span(text: str, start: int) -> tuple[int, int] | None:
    """The parenthesis that follows a verdict's word (within a few characters), as (start, end) in ``text``."""
    m = re.match(r"[^(\n<]{0,40}\(", text[start:])
    if not m:
        return None
    open_at = start + m.end()
    close = text.find(")", open_at)
    return (open_at, close) if close != -1 else None


def _requote_verdict(span: str, old: dict, new: dict) -> tuple[str, int]:
    """The difference, threshold and margin of a verdict's parenthesis, old values replaced by the new ones."""
    changed = 0

    def sub(pattern: str, value_old: float, value_new: float, s: str, signed: bool) -> str:
        def repl(m):
            nonlocal changed
            sign, digits = m.group(1), m.group(2)
            if digits != _fmt(abs(value_old), 2):
                return m.group(0)
            changed += 1
            if not signed:
                return m.group(0).replace(digits, _fmt(value_new, 2))
            minus = "−" if sign == "−" else "-"
            mark = ("+" if sign else "") if value_new >= 0 else minus
            return m.group(0).replace(sign + digits, mark + _fmt(abs(value_new), 2))
        return re.sub(pattern, repl, s, count=1)

    span = sub(r"(?<=threshold )()(\d+\.\d\d)", old["threshold"], new["threshold"], span, signed=False)
    span = sub(r"(?<=margin )()(\d+\.\d\d)", old.get("margin", 0.0), new.get("margin", 0.0), span, signed=False)
    span = sub(r"(?<![\w.])([+−-]?)(\d+\.\d\d)(?= points|,|;| \()", old["diff"], new["diff"], span, signed=True)
    return span, changed


def requote_text(text: str, old: dict, new: dict, old_verdicts: dict, new_verdicts: dict,
                 stated_word) -> Requoted:
    """``text`` with its quotes of ``old`` results and verdicts replaced by ``new`` ones (see the module)."""
    out = Requoted(text)
    pieces, last = [], 0
    for m in PAIR.finditer(text):
        choices = new_pair(m.group(1), m.group(3), old, new)
        if choices is None:
            continue
        if len(choices) > 1:
            out.check.append(f"'{m.group(0)}' quotes several quantities that now differ: {sorted(choices)}")
            continue
        (replacement,) = choices
        if replacement != m.group(0):
            pieces += [text[last:m.start()], replacement]
            last = m.end()
            out.changed += 1
    text = "".join(pieces) + text[last:]
    for m in reversed(list(MARKER.finditer(text))):
        key = m.group(1)
        if key not in old_verdicts or key not in new_verdicts:
            out.check.append(f"verdict {key!r} is not in both verdict files")
            continue
        ov, nv = old_verdicts[key], new_verdicts[key]
        if stated_word(ov) != stated_word(nv) or ov["word"] != nv["word"]:
            out.check.append(f"verdict {key!r}: the rule now gives {nv['word']!r} ({stated_word(nv)}), was "
                             f"{ov['word']!r} ({stated_word(ov)}): rewrite its sentence")
        span = _verdict_span(text, m.end())
        if span is not None:
            body, changed = _requote_verdict(text[span[0]:span[1]], ov, nv)
            text = text[:span[0]] + body + text[span[1]:]
            out.changed += changed
    moved = {_fmt(abs(e["value"]), 2) for name, e in old.items() if name in new
             and _fmt(e["value"], 2) != _fmt(new[name]["value"], 2)}
    moved |= {_fmt(abs(v["diff"]), 2) for key, v in old_verdicts.items() if key in new_verdicts    # a verdict's
              and _fmt(v["diff"], 2) != _fmt(new_verdicts[key]["diff"], 2)}                    # difference in prose
    stale = sorted({m.group(2) for m in NUMBER.finditer(PAIR.sub("", text)) if m.group(2) in moved})
    if stale:
        out.check.append(f"numbers equal to an old value of a quantity that moved (per-seed lists, differences "
                         f"in prose?): {', '.join(stale)}")
    for name, e in old.items():
        if name in new and len(e.get("values", [])) > 1 and e["values"] != new[name]["values"]:
            quoted = sorted(form for form in _seed_lists(e["values"]) if form in text)
            if quoted:
                out.check.append(f"the old per-seed values of {name} are quoted ({'; '.join(quoted)}): now "
                                 f"{', '.join(_fmt(v, 2) for v in new[name]['values'])}")
    out.text = text
    return out


def _seed_lists(values) -> set[str]:
    """How text may write a list of per-seed values: one or two decimals, comma- or slash-separated, signed or not,
    with a hyphen or a true minus."""
    forms = set()
    for decimals in (1, 2):
        for sep in (", ", " / "):
            for sign in ("", "+"):
                plain = sep.join(f"{v:{sign}.{decimals}f}" for v in values)
                forms |= {plain, plain.replace("-", "−")}
    return forms
