"""Issue 31: how long notebook 3's live probe widget takes to re-fit, for every choice an instructor can make.

Builds :class:`rotlib.widgets.ProbeWidget` on the seed-0 shipped RotNet (its frozen features extracted once, timed)
and re-fits every block x label budget x classifier once, as a click on the widget does (the head's training and
its test accuracy; no drawing). Writes the seconds of each re-fit and the largest to a JSON file, with the machine.

    python benchmarks/probe_widget.py [--out benchmarks/probe-widget.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "probe-widget.json")
    args = parser.parse_args(argv)
    from rotlib import paper as P, store
    from rotlib.devices import resolve_precision, pick_device
    from rotlib.profiles import get_profile
    from rotlib.widgets import ProbeWidget

    profile = get_profile("quick")
    net = P.rotnets(profile, progress=False)[0]
    t0 = time.perf_counter()
    widget = ProbeWidget(net, profile, {}, seed=profile.seeds[0])
    built = time.perf_counter() - t0
    rows = []
    for classifier in widget.classifier.options:
        for _, labels in widget.labels.options:
            for block in widget.blocks:
                acc = widget.refit(block, labels, classifier)
                rows.append({"classifier": classifier, "per_class": labels, "block": block, "accuracy": round(acc, 2),
                             "seconds": round(widget.last_seconds, 2)})
                print(rows[-1], flush=True)
    out = {"machine": store.machine(), "precision": resolve_precision(pick_device(profile.device),
                                                                      profile.evaluation_precision),
           "widget_built_seconds": round(built, 2), "largest_refit_seconds": max(r["seconds"] for r in rows),
           "refits": rows}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"widget built (features of 3 label budgets + test) in {built:.1f} s; largest re-fit "
          f"{out['largest_refit_seconds']:.1f} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
