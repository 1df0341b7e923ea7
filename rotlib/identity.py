"""What a cached artifact is: the fields every trained model's and every measured result's key is derived from.

A key holds everything that changes the artifact: its recipe (written by
:mod:`rotlib.experiments`), the device kind and the *resolved* precision it
is computed in (``precision="auto"`` is bf16 on one machine and fp32 on
another, so ``auto`` is never hashed), and :data:`MODEL_FORMAT` or :data:`RESULT_FORMAT`, the version of
what the code computes under a key. A result measured on a model names the
model by :func:`digest` of its weights, never by an attribute stored on the
model: a model trained further in place, or loaded from elsewhere, has other
weights and so other results.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from .devices import pick_device, resolve_precision

# The versions of what the code computes under a key, one for trained models and one for measured results: bump
# MODEL_FORMAT when training computes something else under the same recipe (every model, the shipped ones too, is then
# made anew); bump RESULT_FORMAT when a measurement does (cached results are remade, the models stay).
MODEL_FORMAT = 2
RESULT_FORMAT = 2


def run_fields(device: str | None, precision: str) -> dict:
    """``{"device": "cpu" | "cuda" | ..., "precision": "bf16" | "fp16" | "fp32"}``: where and how a run computes."""
    dev = pick_device(device)
    return {"device": dev.type, "precision": resolve_precision(dev, precision)}


def digest(model: nn.Module) -> str:
    """A short hash of a model's class and every entry of its state dict (names, dtypes, shapes, values)."""
    h = hashlib.sha1(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
