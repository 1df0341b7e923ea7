"""Checkpoints and saved models: written atomically, read with ``weights_only=True``, checked against the model.

An unreadable file is set aside as ``<name>.corrupt`` (kept for a look) and reported; weights saved for another
architecture are refused with a message that says how to build the matching model.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from .files import write_atomic


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model it is loaded into."""


def save_atomic(obj, path) -> None:
    """torch.save to a temporary file, then rename (:func:`rotlib.files.write_atomic`): an interruption never
    leaves a half-written file."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def set_aside(path, err: Exception, log=print) -> Path:
    """Rename an unreadable file to ``<name>.corrupt`` (kept for a look) and say so."""
    path = Path(path)
    bad = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, bad)
    except FileNotFoundError:      # another process set it aside first
        pass
    log(f"{path} is unreadable ({type(err).__name__}: {err}); moved it to {bad}")
    return bad


def load_checkpoint(path, map_location="cpu", log=print, set_aside_unreadable: bool = True) -> dict | None:
    """A saved state dict (``weights_only=True``), or None after setting an unreadable file aside (or, with
    ``set_aside_unreadable=False``, for a file that must stay where it is, such as a shipped model: None, untouched)."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError("not a rotlib checkpoint (no 'model' entry)")
        return state
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        if set_aside_unreadable:
            set_aside(path, err, log)
        else:
            log(f"{path} is unreadable ({type(err).__name__}: {err})")
        return None


def architecture(model: nn.Module) -> dict:
    """What must match for weights to be reusable: class name, config and parameter shapes."""
    return {"class": type(model).__name__, "config": getattr(model, "config", None),
            "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}


def load_weights(model: nn.Module, checkpoint: dict, source="checkpoint") -> None:
    """Load ``checkpoint["model"]`` after checking it was saved for this architecture."""
    saved, mine = checkpoint.get("arch"), architecture(model)
    if saved is not None and (saved["class"], saved["config"], saved["shapes"]) != (mine["class"], mine["config"], mine["shapes"]):
        raise CheckpointMismatchError(
            f"{source} was saved for {saved['class']}({saved['config']}) but the model is "
            f"{mine['class']}({mine['config']}). Build the model with the checkpoint's settings, "
            f"or delete {source} to train a new one."
        )
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        raise CheckpointMismatchError(f"{source} does not fit this model ({err}); build the model with the "
                                      f"checkpoint's settings, or delete {source} to train a new one.") from None
