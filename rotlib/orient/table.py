"""The command line's report: one table row per file, and a summary line."""
from __future__ import annotations

from .apply import OrientResult
from .turns import describe_fix, describe_turn


def table_header(width: int = 28) -> str:
    return f"{'file':{width}s} {'exif':>4s} {'size':>11s} {'turned':>8s} {'conf.':>6s}  action"


def table_row(res: OrientResult, width: int = 28, applying: bool = False) -> str:
    """One line of the CLI table: file, EXIF tag honoured, size, predicted turn, confidence, what was done."""
    name = res.path if len(res.path) <= width else "…" + res.path[-(width - 1):]
    if res.status == "skipped":
        return f"{name:{width}s} {'':>4s} {'':>11s} {'':>8s} {'':>6s}  skipped: {res.message}"
    size = f"{res.size[0]}x{res.size[1]}"
    exif = str(res.exif_orientation) if res.exif_orientation not in (None, 1) else ""
    if res.status == "upright":
        action = "upright"
    elif res.status == "unsure":
        action = f"unsure ({describe_fix(res.turn)}?), left alone"
    elif res.written:
        action = f"{describe_fix(res.turn)} -> {res.written}"
    else:
        action = describe_fix(res.turn) + ("" if applying else " (--apply OUT writes the fix)")
    extra = [m for m in res.message.split("; ") if m and "left alone" not in m]
    action += "".join(f"; {m}" for m in extra)
    return f"{name:{width}s} {exif:>4s} {size:>11s} {describe_turn(res.turn):>8s} {res.confidence:6.2f}  {action}"


def summary_line(results: list[OrientResult]) -> str:
    count = {s: sum(r.status == s for r in results) for s in ("upright", "rotated", "unsure", "skipped")}
    written = sum(r.written is not None for r in results)
    failed = sum(r.write_failed for r in results)
    return (f"{len(results)} files: {count['upright']} upright, {count['rotated']} rotated ({written} corrected copies "
            f"written{f', {failed} failed' if failed else ''}), {count['unsure']} unsure (left alone), "
            f"{count['skipped']} skipped")
