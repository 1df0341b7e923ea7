"""Issue 30: an exercise's training step on a CPU without native bf16, before and after ``ModelSpec.native``.

An exercise that changes the quick profile (here: fewer images, 2 epochs) asks for a model that is not shipped, so
it is trained on the spot. **Before** issue 30 it was trained in the quick profile's pinned bf16, emulated (slowly)
on a CPU without AVX-512 BF16 or AMX: ``spec.get(exact=True)`` still does that (``make models``). **After**, the same
recipe trains in the machine's native precision, fp32 there, under its own key: ``spec.get()``. Both runs use the
real :func:`rotlib.train.fit` on the shipped CIFAR-10 images, in a throw-away cache; the time per step is the
second epoch's (the first includes oneDNN's kernel set-up).

Run it on a CPU without native bf16. On a CPU with it, ``--simulate`` caps oneDNN at AVX2 (the instruction set of
such a CPU: ``ONEDNN_MAX_CPU_ISA=AVX2``, set before torch loads) and makes rotlib see no native bf16; the JSON says
which it was.

    python benchmarks/exercise_step.py [--simulate] [--n-train 640] [--out benchmarks/exercise-step.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulate", action="store_true", help="on a CPU with native bf16: cap oneDNN at AVX2")
    parser.add_argument("--n-train", type=int, default=640, help="training images (16 per step: 40 steps an epoch)")
    parser.add_argument("--out", type=Path, default=HERE / "exercise-step.json")
    args = parser.parse_args(argv)
    if args.simulate and os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2":    # must be set before torch loads
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    os.environ["ROTLIB_CACHE"] = tempfile.mkdtemp(prefix="exercise-step-")
    os.environ["ROTLIB_PROGRESS"] = "0"
    import torch
    from rotlib import experiments as E
    from rotlib.profiles import get_profile
    from rotlib.store import machine

    native_bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if native_bf16 and not args.simulate:
        parser.error("this CPU has native bf16 (AVX-512 BF16 or AMX): run on one without, or pass --simulate")
    profile = get_profile("quick").replace(n_train=args.n_train, rotnet_epochs=2)    # an exercise's changed recipe
    report = {"machine": machine(), "simulated": args.simulate, "oneDNN_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
              "n_train": args.n_train, "batch": f"{profile.batch_size} images x 4 rotations", "runs": {}}
    with mock.patch.object(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", return_value=False):
        spec = E.rotnet_spec(profile, seed=0, progress=False)
        chosen = {"before: pinned bf16, emulated": spec,        # get(exact=True), as before issue 30
                  "after: native precision": spec.resolved()}   # get() now (decided before anything is cached)
        for label, used in chosen.items():
            marks = []
            t0 = time.perf_counter()
            model = E.rotnet_spec(profile.replace(precision=used.config["train"]["precision"]), seed=0, progress=False,
                                  on_epoch_end=lambda epoch, m: marks.append(time.perf_counter())).get(exact=True)
            assert E.rotnet_spec(profile.replace(precision=used.config["train"]["precision"]), seed=0).stem == used.stem
            steps = len(model.history["step_loss"]) // 2
            report["runs"][label] = {"precision": used.config["train"]["precision"], "stem": used.stem,
                                     "steps_per_epoch": steps, "total_s": round(time.perf_counter() - t0, 2),
                                     "step_s": round((marks[1] - marks[0]) / steps, 4)}
            print(label, report["runs"][label], flush=True)
    before, after = (r["step_s"] for r in report["runs"].values())
    report["speedup"] = round(before / after, 2)
    print(f"a step: {before:.3f} s before, {after:.3f} s after: x{report['speedup']}")
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
