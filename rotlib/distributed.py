"""Several GPUs with torchrun: DistributedDataParallel set-up, used by :func:`rotlib.train.fit`.

``torchrun --nproc_per_node=N -m rotlib {train,evaluate,reproduce} ...``
starts N processes. Every process draws the same global batch (same
shuffle, same crops, flips and rotations: one generator, seeded as in a
single process) and keeps its strided share of it, so N processes train on
exactly the batches one process would, with a different part of each batch
on each rank; DDP averages the gradients. Decisions that read or write files
(download, cache hit or miss, a corrupt entry set aside) are taken once, on
rank 0, and handed to every rank (:func:`on_main`), so the ranks never
disagree and deadlock. Only rank 0 writes checkpoints, cache entries and
results. When one rank fails, torchrun stops the others (its default,
``--max-restarts=0``); a NaN loss is seen by every rank at once, since the
losses are summed over ranks before they are checked. Without torchrun
nothing changes.
"""
from __future__ import annotations

import copy
import os

import torch
import torch.distributed as dist

from .settings import current


def _wants_cuda(device: str | None) -> bool:
    """Whether the requested device (None/"auto": CUDA when present) is a CUDA GPU."""
    device = device or current().device or "auto"
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def init_from_env(device: str | None = None) -> bool:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1); return whether distributed.

    The backend follows the requested ``device``: NCCL for CUDA (each process on the GPU of its
    LOCAL_RANK), gloo for the CPU, so ``--device cpu`` on a GPU host runs gloo on CPU tensors.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        use_cuda = _wants_cuda(device)
        if use_cuda:
            if not torch.cuda.is_available():
                raise RuntimeError(f"device {device!r} requested but CUDA is not available; use --device cpu")
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def shutdown() -> None:
    """Leave the process group (at the end of a command), so every rank exits cleanly."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def on_main(fn):
    """``fn()`` run on rank 0 only, its result (or the exception it raised) handed to every rank.

    For decisions that must be the same everywhere: a download, a cache hit or miss, a file set aside.
    Without torchrun it is just ``fn()``. The result must pickle (tensors are sent on the CPU).
    """
    if not is_distributed():
        return fn()
    box = [None]
    if is_main():
        try:
            box = [("ok", fn())]
        except Exception as err:          # every rank raises it, none is left waiting
            box = [("error", err)]
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over the ranks (``x`` itself without torchrun)."""
    if is_distributed():
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def gather(obj) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` without torchrun)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def local_device(preference: str | None = None) -> str | None:
    """Under torchrun with CUDA, each process uses the GPU of its LOCAL_RANK."""
    if is_distributed() and torch.cuda.is_available() and (preference in (None, "auto", "cuda")):
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return preference


def check_batch(batch_size: int, n: int, desc: str = "training") -> None:
    """Refuse a global batch that the ranks cannot share evenly (DDP's mean would weight the ranks unequally)."""
    w = world_size()
    if batch_size % w:
        fits = max(k for k in range(1, w + 1) if batch_size % k == 0)
        raise ValueError(f"{desc}: a batch of {batch_size} cannot be shared evenly by {w} processes; choose a "
                         f"batch size divisible by {w} or run on {fits} GPUs")
    if n < w:
        raise ValueError(f"{desc}: {n} training examples for {w} processes; every process needs at least one")


def shard(x: torch.Tensor) -> torch.Tensor:
    """This process's share of a global batch (strided, so every rank gets a similar mix)."""
    return x[rank()::world_size()] if is_distributed() else x


def sync_batchnorm_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with its BatchNorm layers synchronised across GPUs; ``model`` itself is left as it is.

    (``convert_sync_batchnorm`` replaces the layers inside the module it is given; the caller's model keeps
    its own. :func:`rotlib.train.fit` copies the trained weights back.)
    """
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))


def wrap(model: torch.nn.Module, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(module, net)``: the module whose parameters train and the network to call (its DDP wrapper).

    Without torchrun, or with nothing to train, both are ``model``. On CUDA under torchrun ``module`` is a
    SyncBatchNorm copy of ``model`` (see :func:`sync_batchnorm_copy`); on the CPU (gloo, where SyncBatchNorm
    does not run) it is ``model``, with per-process BatchNorm statistics.
    """
    if not is_distributed() or not any(p.requires_grad for p in model.parameters()):
        return model, model
    if device.type == "cuda":
        module = sync_batchnorm_copy(model).to(device)
        return module, torch.nn.parallel.DistributedDataParallel(module, device_ids=[device.index])
    return model, torch.nn.parallel.DistributedDataParallel(model)
