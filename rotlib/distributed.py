"""Several GPUs with torchrun: DistributedDataParallel set-up, used by :func:`rotlib.train.fit`.

``torchrun --nproc_per_node=N -m rotlib reproduce --profile paper`` starts N
processes; each takes its share of every batch (the global batch size stays
the profile's), gradients are averaged by DDP, and only rank 0 writes
checkpoints, cache entries and results. Without torchrun nothing changes.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> bool:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1); return whether distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


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


def local_device(preference: str | None = None) -> str | None:
    """Under torchrun with CUDA, each process uses the GPU of its LOCAL_RANK."""
    if is_distributed() and torch.cuda.is_available() and (preference in (None, "auto", "cuda")):
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return preference


def shard(x: torch.Tensor) -> torch.Tensor:
    """This process's share of a global batch (strided, so every rank gets a similar mix)."""
    return x[rank()::world_size()] if is_distributed() else x


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP-wrap a model with trainable parameters (BatchNorm synchronised across GPUs)."""
    if not is_distributed() or not any(p.requires_grad for p in model.parameters()):
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return torch.nn.parallel.DistributedDataParallel(model)
