"""Throughput of the RotNet training step: rotlib's pipeline vs a baseline like the original code's.

Baseline (as in gidariss/FeatureLearningRotNet's dataloader): a Dataset that
rotates each sample on its own (numpy flip/transpose), normalises it, and a
DataLoader that collates the 4 copies; fp32, default memory format.
rotlib: uint8 images held as one tensor, normalised and rotated per batch,
with bf16 autocast and/or channels_last where they help.

Counts images per second with rotated copies counted (a batch of B images
is 4B inputs). Writes benchmarks/results-<device>.json.

    python benchmarks/throughput.py [--device cpu|cuda] [--steps N] [--compile]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rotlib import NetworkInNetwork, rotate_batch
from rotlib.train import amp_dtype

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


def _step(model, opt, x, y, dtype, device):
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench(spec, device, variant, steps, warmup=2):
    torch.manual_seed(0)
    c, s, b = spec["channels"], spec["size"], spec["batch"]
    images = np.random.default_rng(0).integers(0, 256, (b * (steps + warmup), c, s, s), dtype=np.uint8)
    model = NetworkInNetwork(spec["blocks"], spec["width"], c, 4).to(device)
    cl = variant.get("channels_last", False)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    if variant.get("compile"):
        model = torch.compile(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    dtype = amp_dtype(device, "bf16") if variant.get("bf16") else None
    if variant["pipeline"] == "baseline":
        loader = torch.utils.data.DataLoader(PerSampleRotations(images), batch_size=b, shuffle=True)

        def batches():
            for x, y in loader:
                yield x.view(-1, c, s, s).to(device), y.view(-1).to(device)
    else:
        held = torch.from_numpy(images)

        def batches():
            order = torch.randperm(len(held))
            for i in range(0, len(held), b):
                u8 = held[order[i:i + b]].to(device)
                x, y = rotate_batch((u8.float() / 255 - 0.5) / 0.25, "4")
                yield (x.contiguous(memory_format=torch.channels_last) if cl else x), y
    model.train()
    for i, (x, y) in enumerate(batches()):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        _step(model, opt, x, y, dtype, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 4 * b * steps / (time.perf_counter() - t0)


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
    if amp_dtype(device, "auto") is None:
        variants = {k: v for k, v in variants.items() if not v.get("bf16")}
    results = {"device": str(device), "cpu": platform.processor() or platform.machine(),
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
