"""Throughput of the RotNet training step: rotlib's pipeline vs a baseline like the original code's.

Baseline (as in gidariss/FeatureLearningRotNet's dataloader): a Dataset that
rotates each sample on its own (numpy flip/transpose), normalises it, and a
DataLoader that collates the 4 copies; fp32, default memory format. It is
written here by hand because it is the thing compared against.
rotlib: :func:`rotlib.train.fit` itself (not a copy of its loop) on uint8
images held as one tensor, normalised and rotated per batch, with bf16
autocast and/or channels_last.

Counts images per second with rotated copies counted (a batch of B images
is 4B inputs), after the first epoch of ``--steps`` steps (a warm-up), over
the next two. Writes benchmarks/results-<device>.json.

    python benchmarks/throughput.py [--device cpu|cuda] [--steps N] [--compile]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rotlib import NetworkInNetwork
from rotlib.data import ImageData
from rotlib.store import machine
from rotlib.devices import emulated_bf16, resolve_precision
from rotlib.train import RotationTask, TrainConfig, fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_smoke import epoch_timer  # noqa: E402

MODELS = {"paper NIN (w192, 4 blocks, 32x32 RGB)": dict(width=192, blocks=4, channels=3, size=32, batch=32),
          "quick NIN (w64, 4 blocks, 28x28 gray)": dict(width=64, blocks=4, channels=1, size=28, batch=64)}


class PerSampleRotations(torch.utils.data.Dataset):
    """The baseline: each item is one image rotated 4 times with numpy, then normalised."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i].astype(np.float32) / 255.0          # (C, H, W)
        rots = [img, np.flip(np.transpose(img, (0, 2, 1)), 1), np.flip(np.flip(img, 1), 2),
                np.transpose(np.flip(img, 1), (0, 2, 1))]
        x = torch.from_numpy(np.stack([r.copy() for r in rots]))
        return (x - 0.5) / 0.25, torch.arange(4)


def _baseline(spec, device, steps, warmup=2) -> float:
    """The original code's pipeline: per-sample rotation in a Dataset, fp32, default memory format."""
    torch.manual_seed(0)
    c, s, b = spec["channels"], spec["size"], spec["batch"]
    images = np.random.default_rng(0).integers(0, 256, (b * (steps + warmup), c, s, s), dtype=np.uint8)
    model = NetworkInNetwork(spec["blocks"], spec["width"], c, 4).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = torch.utils.data.DataLoader(PerSampleRotations(images), batch_size=b, shuffle=True)
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(x.view(-1, c, s, s).to(device)), y.view(-1).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return 4 * b * steps / (time.perf_counter() - t0)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rotlib(spec, device, variant, steps, epochs=3) -> float:
    """rotlib's own training loop, :func:`rotlib.train.fit`, timed from the end of its first epoch."""
    torch.manual_seed(0)
    c, s, b = spec["channels"], spec["size"], spec["batch"]
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (b * steps, c, s, s), dtype=np.uint8))
    data = ImageData(images, torch.zeros(len(images), dtype=torch.long), ["image"], (0.5,) * c, (0.25,) * c)
    model = NetworkInNetwork(spec["blocks"], spec["width"], c, 4)
    cfg = TrainConfig(epochs=epochs, batch_size=b, lr=0.01, precision="bf16" if variant.get("bf16") else "fp32",
                      channels_last=variant.get("channels_last", False))
    ends, timestamp = epoch_timer(device)
    fit(model, data, RotationTask(data.normalize, "4"), cfg, device=device, progress=False, log=lambda m: None,
        on_epoch_end=timestamp, compile=variant.get("compile", False))
    return 4 * b * steps * (len(ends) - 1) / (ends[-1] - ends[0])


def bench(spec, device, variant, steps) -> float:
    return _baseline(spec, device, steps) if variant["pipeline"] == "baseline" else _rotlib(spec, device, variant, steps)


VARIANTS = {
    "baseline: per-sample rotation, fp32": {"pipeline": "baseline"},
    "rotlib batch rotation, fp32": {"pipeline": "rotlib"},
    "rotlib + channels_last": {"pipeline": "rotlib", "channels_last": True},
    "rotlib + bf16": {"pipeline": "rotlib", "bf16": True},
    "rotlib + bf16 + channels_last": {"pipeline": "rotlib", "bf16": True, "channels_last": True},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to warm up on CPU)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    variants = dict(VARIANTS)
    if args.compile:
        variants["rotlib + bf16 + channels_last + compile"] = {"pipeline": "rotlib", "bf16": True,
                                                               "channels_last": True, "compile": True}
    try:                                   # bf16 runs on every CPU (emulated where it is not native), not on old GPUs
        resolve_precision(device, "bf16")
    except ValueError:
        variants = {k: v for k, v in variants.items() if not v.get("bf16")}
    results = {"device": str(device), "machine": machine(), "emulated_bf16": emulated_bf16(device, "bf16"),
               "threads": torch.get_num_threads(), "torch": torch.__version__, "steps": args.steps, "models": {}}
    t_start = time.time()
    for name, spec in MODELS.items():
        rows = {}
        for vname, v in variants.items():
            rows[vname] = round(bench(spec, device, v, args.steps), 1)
        base = rows["baseline: per-sample rotation, fp32"]
        best = max(rows, key=rows.get)
        results["models"][name] = {"images_per_s": rows, "speedup_vs_baseline": {k: round(r / base, 2) for k, r in rows.items()},
                                   "best": best}
        print(f"\n{name} on {device} ({results['threads']} threads), images/s with the 4 rotated copies counted:")
        for k, r in rows.items():
            print(f"  {k:45s} {r:9.1f}   x{r / base:.2f}")
        print(f"  -> fastest: {best}, x{rows[best] / base:.2f} the baseline")
    results["seconds"] = round(time.time() - t_start, 1)
    out = Path(args.out or Path(__file__).parent / f"results-{device.type}.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out} ({results['seconds']} s)")


if __name__ == "__main__":
    main()
