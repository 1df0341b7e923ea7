"""Accuracy parity: the quick profile with the fast defaults (bf16 autocast + channels_last) vs plain fp32.

Same seed, same data, same budget; reports the rotation accuracy and the
conv2 non-linear probe accuracy of both and their difference. Writes
benchmarks/parity-<device>.json. Takes a few CPU minutes (fp32 is the slow one).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import rotlib
from rotlib import experiments as E
from rotlib.devices import pick_device


def main():
    os.environ["ROTLIB_CACHE"] = tempfile.mkdtemp(prefix="rotlib-parity-")  # train both, timed, from scratch
    base = rotlib.get_profile("quick")
    results = {}
    for precision in ("auto", "fp32"):
        profile = base.replace(precision=precision)
        t0 = time.time()
        model = E.train_rotnet(profile)
        results[precision] = {"train_seconds": round(time.time() - t0, 1),
                              "rotation_accuracy": E.rotation_accuracy(model, profile),
                              "conv2_probe": E.probe(model, profile, "conv2", "nonlinear")}
    diff = {k: round(results["auto"][k] - results["fp32"][k], 2) for k in ("rotation_accuracy", "conv2_probe")}
    out = {"device": str(pick_device(base.device)), "fast_defaults": "bf16 autocast + channels_last",
           "results": results, "difference_fast_minus_fp32": diff,
           "within_1_point": all(abs(v) <= 1.0 for v in diff.values())}
    print(json.dumps(out, indent=2))
    path = Path(__file__).parent / f"parity-{out['device'].split(':')[0]}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
