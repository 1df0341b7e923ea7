"""``evaluating(model)``: eval mode inside a block, every module's own train/eval flag restored after."""
from __future__ import annotations

from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluating(model: nn.Module):
    """Run ``model`` in eval mode inside the ``with`` block; afterwards every sub-module gets back its own
    ``training`` flag (``model.train(was_training)`` would flatten a model whose parts had different modes,
    e.g. a frozen backbone kept in eval mode under a classifier in training mode)."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model.eval()
    finally:
        for m, mode in modes:
            m.training = mode
