"""Accuracies, rotation confusion and frozen features (paper Sec. 3.1).

These functions only read the model: they run it in eval mode on the
requested device and put it back where it was (device and train/eval mode).
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager

import torch
from torch import nn

from . import data as D
from .train import _prepare, amp_dtype, pick_device


@contextmanager
def evaluating(model: nn.Module, device: torch.device):
    """Run ``model`` in eval mode on ``device`` inside the block; restore its device and modes after."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    home = first.device if first is not None else device
    modes = {m: m.training for m in model.modules()}
    try:
        yield model.to(device).eval()
    finally:
        model.to(home)
        for m, mode in modes.items():
            m.training = mode


def _device(device) -> torch.device:
    return pick_device(device) if device is None or isinstance(device, str) else device


@torch.no_grad()
def predict(model: nn.Module, data, task, batch_size: int = 256, device=None, precision: str = "auto"):
    """Logits and targets of ``task`` over the whole dataset, in order (eval mode, no augmentation)."""
    device = _device(device)
    dtype = amp_dtype(device, precision)
    outs, targets = [], []
    with evaluating(model, device):
        for images, labels in D.batches(data, batch_size):
            x, y = task(images.to(device), labels.to(device), train=False)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                outs.append(model(_prepare(x, device, True)).float().cpu())
            targets.append(y.cpu())
    return torch.cat(outs), torch.cat(targets)


def accuracy(model, data, task, **kw) -> float:
    """Top-1 accuracy in percent."""
    logits, y = predict(model, data, task, **kw)
    return 100.0 * (logits.argmax(1) == y).float().mean().item()


def confusion_matrix(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts: rows are true classes, columns predicted classes."""
    idx = targets * num_classes + logits.argmax(1)
    return torch.bincount(idx, minlength=num_classes ** 2).view(num_classes, num_classes)


@torch.no_grad()
def extract_features(backbone: nn.Module, data, normalize, blocks: list[str], batch_size: int = 256,
                     device=None, precision: str = "auto") -> dict[str, torch.Tensor]:
    """Frozen features of every image at each listed block, in one pass (kept on the CPU, fp32)."""
    device = _device(device)
    dtype = amp_dtype(device, precision)
    out: dict[str, list] = {b: [] for b in blocks}
    with evaluating(backbone, device):
        for images, _ in D.batches(data, batch_size):
            x = _prepare(normalize(images.to(device)), device, True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                feats = backbone(x, out_feat_keys=blocks)
            for b, f in zip(blocks, feats):
                out[b].append(f.float().contiguous().cpu())
    return {b: torch.cat(v) for b, v in out.items()}
