"""Accuracies, rotation confusion and frozen features (paper Sec. 3.1).

These functions only read the model: they run it in eval mode on the
requested device and put it back where it was (device and train/eval mode).
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn

from . import data as D
from . import distributed as dist
from . import modes
from .devices import amp_dtype, pick_device, to_device


@contextmanager
def evaluating(model: nn.Module, device: torch.device):
    """Run ``model`` in eval mode on ``device`` inside the block; restore its device and modes after."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    home = first.device if first is not None else device
    try:
        with modes.evaluating(model.to(device)):
            yield model
    finally:
        model.to(home)


def _device(device) -> torch.device:
    return pick_device(device) if device is None or isinstance(device, str) else device


class Predictions(NamedTuple):
    """What :func:`predict` returns: one row per example the task made from the data.

    ``image[i]`` is the index in the dataset of the image row ``i`` was made from, so a caller never has to
    reconstruct the order (a rotation task turns each batch into K rotated copies, rotation-major *within* the
    batch: the whole set is not rotation-major)."""

    logits: torch.Tensor
    targets: torch.Tensor
    image: torch.Tensor


def _rows_per_image(task, n: int, rows: int) -> torch.Tensor:
    """Which of the batch's ``n`` images each of its ``rows`` outputs comes from (the task says, or one row each)."""
    if hasattr(task, "source_index"):
        return task.source_index(n)
    if rows != n:
        raise ValueError(f"the task made {rows} rows from {n} images and has no source_index(n) to say which "
                         "image each row comes from")
    return torch.arange(n)


@torch.no_grad()
def predict(model: nn.Module, data, task, batch_size: int = 256, device=None, precision: str = "auto") -> Predictions:
    """Logits, targets and source image of every row ``task`` makes from the dataset (eval mode, no augmentation).

    Under torchrun the batches are shared out between the processes and the results gathered, in order, on every
    process (the same rows as in one process)."""
    device = _device(device)
    dtype = amp_dtype(device, precision)
    mine = []                       # (batch number, logits, targets, source images) of this process's batches
    with evaluating(model, device):
        for b, (batch, labels) in enumerate(D.batches(data, batch_size)):
            if b % dist.world_size() != dist.rank():
                continue
            x, y = task(batch.to(device), labels.to(device), train=False)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(to_device(x, device, True)).float().cpu()
            mine.append((b, logits, y.cpu(), b * batch_size + _rows_per_image(task, len(batch), len(y))))
    parts = sorted((part for theirs in dist.gather(mine) for part in theirs), key=lambda part: part[0])
    return Predictions(*(torch.cat([part[k] for part in parts]) for k in (1, 2, 3)))


def accuracy(model, data, task, **kw) -> float:
    """Top-1 accuracy in percent."""
    p = predict(model, data, task, **kw)
    return 100.0 * (p.logits.argmax(1) == p.targets).float().mean().item()


def per_class_accuracy(p: Predictions, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Accuracy (%) of the predictions on the rows made from images of each class (``labels``: the dataset's
    labels, e.g. object classes, while ``p.targets`` may be rotations)."""
    correct = (p.logits.argmax(1) == p.targets).float()
    cls = labels[p.image]
    return torch.stack([100 * correct[cls == c].mean() for c in range(num_classes)])


def confusion_matrix(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts: rows are true classes, columns predicted classes."""
    idx = targets * num_classes + logits.argmax(1)
    return torch.bincount(idx, minlength=num_classes ** 2).view(num_classes, num_classes)


@torch.no_grad()
def extract_features(backbone: nn.Module, data, normalize, blocks: list[str], batch_size: int = 256,
                     device=None, precision: str = "auto") -> dict[str, torch.Tensor]:
    """Frozen features of every image at each listed block, in one pass (kept on the CPU, fp32).

    Under torchrun the batches are shared out between the processes, like :func:`predict`'s, and gathered in order
    on every process (the same features as in one process)."""
    device = _device(device)
    dtype = amp_dtype(device, precision)
    mine = []                       # (batch number, {block: features}) of this process's batches
    with evaluating(backbone, device):
        for b, (images, _) in enumerate(D.batches(data, batch_size)):
            if b % dist.world_size() != dist.rank():
                continue
            x = to_device(normalize(images.to(device)), device, True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                feats = backbone(x, out_feat_keys=blocks)
            mine.append((b, {k: f.float().contiguous().cpu() for k, f in zip(blocks, feats)}))
    parts = sorted((part for theirs in dist.gather(mine) for part in theirs), key=lambda part: part[0])
    return {k: torch.cat([features[k] for _, features in parts]) for k in blocks}
