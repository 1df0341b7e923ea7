"""Scenarios of rotlib under torchrun, on the CPU (gloo): run by tests/test_distributed.py.

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_scenarios.py OUT_DIR [crash]

Each rank writes what it saw to ``OUT_DIR/rank<r>.pt``; the test compares the ranks with each other and with the
same scenario run in one process (:func:`run_all` without torchrun). ``crash``: rank 1 fails at its second step
while rank 0 goes on, to show that every rank ends.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

from rotlib import cache as C
from rotlib import distributed as dist
from rotlib.data import ImageData, load_dataset
from rotlib.evaluate import extract_features, predict
from rotlib.models import NetworkInNetwork
from rotlib.train import ClassificationTask, RotationTask, TensorData, TrainConfig, fit

FP32 = dict(precision="fp32", channels_last=False)


def _images(n: int, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
                     torch.randint(0, 4, (n,), generator=g), ["a", "b", "c", "d"], (0.5,) * 3, (0.25,) * 3)


def _vectors(n: int, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g))


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(5, 3)


def linear_fit(n: int, batch_size: int) -> dict:
    """A model without BatchNorm: DDP over the shares of each batch must compute what one process computes."""
    model = _linear()
    history = fit(model, _vectors(n), ClassificationTask(), TrainConfig(epochs=2, batch_size=batch_size, **FP32),
                  device="cpu", progress=False)
    return {"weight": model.weight.detach().clone(), "history": history}


def first_inputs() -> torch.Tensor:
    """The network's input in the first step of a RotNet fit with crops and flips (this process's share)."""
    torch.manual_seed(0)
    net = NetworkInNetwork(3, 8, 3, 4)
    seen = []
    net.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()) if not seen else None)
    data = _images(16)
    fit(net, data, RotationTask(data.normalize, "4", "all", augment=True),
        TrainConfig(epochs=1, batch_size=8, **FP32), device="cpu", progress=False)
    return seen[0]


def refused(fn) -> str:
    try:
        fn()
    except (ValueError, FloatingPointError, FileNotFoundError) as err:
        return f"{type(err).__name__}: {err}"
    return "not refused"


class NaNOnLastRank(ClassificationTask):
    """Inputs become NaN at the second step, on the last rank only."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, images, labels, train, generator=None, draws=None):
        x, y = super().__call__(images, labels, train, generator, draws)
        self.calls += 1
        if self.calls == 2 and dist.rank() == dist.world_size() - 1:
            x = x.clone()
            x[-1] = float("nan")              # the last row of the global batch: on the last rank's share
        return x, y


class FailOnRank1(ClassificationTask):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, images, labels, train, generator=None, draws=None):
        self.calls += 1
        if self.calls == 2 and dist.rank() == 1:
            raise RuntimeError("rank 1 failed on purpose")
        return super().__call__(images, labels, train, generator, draws)


def cached(cache: Path) -> dict:
    """A corrupt cache entry: every rank must train (never some load while others train), then every rank loads."""
    os.environ["ROTLIB_CACHE"] = str(cache)
    calls, logs = [], []

    def train(model, ckpt):
        calls.append(1)
        return fit(model, _vectors(16), ClassificationTask(), TrainConfig(epochs=1, batch_size=4, **FP32), ckpt,
                   device="cpu", progress=False)

    stem = C.entry_stem("net", {"a": 1})
    if dist.is_main():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / f"{stem}.pt").write_bytes(b"not a model")
    dist.barrier()
    first = C.cached_model("net", {"a": 1}, _linear, train, log=logs.append)
    again = C.cached_model("net", {"a": 1}, _linear, train, log=logs.append)
    if dist.is_main():
        (cache / f"{C.entry_stem('acc', {'b': 2})}.json").write_text("{truncated")
    dist.barrier()
    computed = []
    value = C.cached_json("acc", {"b": 2}, lambda: computed.append(1) or 12.5, log=logs.append)
    return {"trained": len(calls), "first": first.weight.detach().clone(), "again": again.weight.detach().clone(),
            "logs": logs, "json": value, "json_computed": len(computed)}


def run_all(out: Path) -> dict:
    data = _images(10, seed=1)
    torch.manual_seed(1)
    net = NetworkInNetwork(3, 8, 3, 4).eval()
    return {
        "world": dist.world_size(),
        "even": linear_fit(40, 8),
        "uneven": linear_fit(5, 8),           # one batch of 5 rows: shares of 3 and 2
        "inputs": first_inputs(),
        "indivisible": refused(lambda: linear_fit(40, 7)),
        "nan": refused(lambda: fit(_linear(), _vectors(32), NaNOnLastRank(), TrainConfig(epochs=1, batch_size=8, **FP32),
                                   device="cpu", progress=False)),
        "predict": predict(net, data, RotationTask(data.normalize), batch_size=3, device="cpu", precision="fp32"),
        "features": extract_features(net, data, data.normalize, ["conv1", "conv3"], batch_size=3, device="cpu",
                                     precision="fp32"),
        "cache": cached(out / "cache"),
        # looked for (and downloaded) by rank 0 alone; its error reaches every rank
        "no_data": refused(lambda: load_dataset("cifar10", "train", root=out / "empty", download=False)),
    }


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    dist.init_from_env("cpu")
    try:
        if sys.argv[2:] == ["crash"]:
            fit(_linear(), _vectors(64), FailOnRank1(), TrainConfig(epochs=50, batch_size=8, **FP32), device="cpu",
                progress=False)
            return
        result = run_all(out)
        torch.save(result, out / f"rank{dist.rank()}.pt")
    finally:
        dist.shutdown()


if __name__ == "__main__":
    main()
