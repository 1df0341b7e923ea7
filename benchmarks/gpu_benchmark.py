"""Images/s of the paper's NIN on a GPU, and the wall time of the full ``paper`` profile estimated from it.

``make bench-gpu``. Times :func:`rotlib.train.fit` itself (not a copy of its loop) on the shipped CIFAR-10 images
(data/cifar10-5k), moved to the GPU once as fit does: the RotNet step (128 images x 4 rotations, crop + flip)
and the frozen-conv2 probe step (non-linear classifier, 128 images), in

- ``bf16 + channels_last`` (rotlib's default on a GPU with native bf16),
- the same with ``torch.compile`` (its compilation falls in the first epoch, which is not timed),
- ``fp32 + channels_last`` (TF32 as PyTorch's defaults allow) for reference.

Each variant trains ``--epochs`` epochs (39 steps each); images/s is measured from the end of epoch 1 to the end
of the last (``torch.cuda.synchronize`` at each epoch end). The estimate counts the rows every model of
``python -m rotlib reproduce --profile paper`` trains on (RotNets of Table 1 and 2, the supervised NIN, 13 probes)
and divides by the measured rates: one GPU, the fastest variant, no evaluation or data-loading time.

    python benchmarks/gpu_benchmark.py [--epochs 4] [--device cuda] [--width 192] [--out PATH]

Without a CUDA GPU it says so and exits 0; ``--device cpu --width 8`` runs it on the CPU (the unit tests do).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rotlib import experiments as E  # noqa: E402
from rotlib.models import Probe, feature_shape, make_classifier  # noqa: E402
from rotlib.profiles import PROFILES, get_profile  # noqa: E402
from rotlib.devices import pick_device  # noqa: E402
from rotlib.train import ClassificationTask, RotationTask, TrainConfig, fit  # noqa: E402

VARIANTS = {"bf16 + channels_last": dict(precision="bf16", compile=False),
            "bf16 + channels_last + torch.compile": dict(precision="bf16", compile=True),
            "fp32 + channels_last": dict(precision="fp32", compile=False)}


def _time_fit(model, data, task, cfg, device, rows_per_step: int, compile: bool) -> float:
    """Rows per second after the first epoch."""
    from gpu_smoke import epoch_timer
    ends, timestamp = epoch_timer(device)
    fit(model, data, task, cfg, device=device, progress=False, on_epoch_end=timestamp, compile=compile)
    steps = len(data) // cfg.batch_size
    return (len(ends) - 1) * steps * rows_per_step / (ends[-1] - ends[0])


def measure(device_name: str, epochs: int, width: int, variants=tuple(VARIANTS), n_train: int | None = None,
            on_variant=None) -> dict:
    """Rates per variant; a variant that fails (e.g. ``torch.compile``) is recorded as failed and the others go on;
    ``on_variant(rates)`` after each one, so a report can be written as it goes."""
    device = pick_device(device_name)
    profile = get_profile("paper", dataset="cifar10-5k", device=device_name, width=width, n_train=n_train)
    data = E.load_split(profile, "train")
    b = profile.batch_size
    rates = {}
    for name in variants:
        v = VARIANTS[name]
        if v["precision"] == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
            rates[name] = {"skipped": "no native bf16 on this GPU"}
        else:
            try:
                cfg = TrainConfig(epochs=epochs, batch_size=b, precision=v["precision"])
                torch.manual_seed(0)
                rotnet = E.build_network(profile, 4)
                train = _time_fit(rotnet, data, RotationTask(data.normalize, "4", "all", augment=True), cfg, device,
                                  4 * b, v["compile"])
                head = make_classifier("nonlinear", feature_shape(rotnet, "conv2", data.shape), len(data.classes), width)
                probe = _time_fit(Probe(rotnet, "conv2", head), data, ClassificationTask(data.normalize, augment=True),
                                  cfg, device, b, v["compile"])
                rates[name] = {"rotnet_step_images_per_s": round(train), "probe_step_images_per_s": round(probe)}
            except Exception as err:        # recorded; the other variants' figures are kept
                rates[name] = {"failed": f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"}
        if on_variant:
            on_variant(rates)
    return rates


def paper_workload() -> dict:
    """Training rows of every model ``reproduce --profile paper`` trains (one seed; CIFAR-10's 50,000 images)."""
    p, n = PROFILES["paper"], 50_000
    rotnet_rows = {"4": 4, "8": 8, "2-0/180": 2, "2-90/270": 2}             # rotation_budget "epochs"
    probes = 2 * p.num_blocks + 3 + 2       # Table 1 (RotNet, random) x blocks; Table 2's other 3; Table 3's 2 conv
    return {"rotnet_rows": sum(p.rotnet_epochs * n * k for k in rotnet_rows.values()),
            "supervised_rows": p.supervised_epochs * n, "probe_rows": probes * p.classifier_epochs * n,
            "models": {"rotnets": len(rotnet_rows), "supervised": 1, "probes": probes}}


def estimate(rates: dict) -> dict:
    w = paper_workload()
    timed = {k: v for k, v in rates.items() if "rotnet_step_images_per_s" in v}
    if not timed:
        return {"variant": None, "workload": w, "hours": None, "note": "no variant was timed"}
    best = max(timed, key=lambda k: timed[k]["rotnet_step_images_per_s"])
    r = timed[best]
    seconds = ((w["rotnet_rows"] + w["supervised_rows"]) / r["rotnet_step_images_per_s"]
               + w["probe_rows"] / r["probe_step_images_per_s"])
    return {"variant": best, "workload": w, "hours": round(seconds / 3600, 2),
            "note": "training steps only, one GPU; the supervised NIN counted at the RotNet step's rate"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--n-train", dest="n_train", type=int, default=None, help="fewer of the 5,000 images (tests)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    ap.add_argument("--out", default=str(HERE / "gpu-benchmark.json"))
    args = ap.parse_args()
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    from gpu_smoke import cuda_gate, gpu_info
    gate = cuda_gate(args.device, "bench-gpu")
    if gate is not None:
        return gate
    t0 = time.perf_counter()
    report = {"device": gpu_info(pick_device(args.device)), "width": args.width, "epochs": args.epochs, "rates": {},
              "complete": False}

    def save(rates):                # after every variant: a later failure or a kill keeps what was measured
        report["rates"] = rates
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")

    rates = measure(args.device, args.epochs, args.width, variants, args.n_train, on_variant=save)
    report.update(paper_profile_estimate=estimate(rates), seconds=round(time.perf_counter() - t0, 1), complete=True)
    save(rates)
    print(json.dumps(report, indent=2))
    failed = [k for k, v in rates.items() if "failed" in v]
    print(f"wrote {args.out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
