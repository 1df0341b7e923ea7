"""A cache of trained models and results, keyed by their full configuration.

Notebook 2 trains the RotNet; notebooks 3-7 ask for the same configuration
and load it instead of retraining. Every load and every training run says
so; nothing is retrained silently. The folder is ``$ROTLIB_CACHE`` or
``cache/`` in the checkout.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .distributed import barrier, is_main
from .train import architecture, load_weights, save_atomic

DEFAULT_CACHE = Path(__file__).resolve().parent.parent / "cache"


def cache_dir() -> Path:
    return Path(os.environ.get("ROTLIB_CACHE", DEFAULT_CACHE))


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-serialisable config."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cached_model(name: str, config: dict, build, train, log=print):
    """Return ``build()`` with weights from the cache, or trained by ``train(model, checkpoint_path)``.

    ``train`` returns a history dict, stored beside the weights and set as
    ``model.history``. An interrupted training resumes from its checkpoint.
    """
    key = config_key(config)
    folder = cache_dir()
    final, ckpt = folder / f"{name}-{key}.pt", folder / f"{name}-{key}.ckpt"
    model = build()
    if final.exists():
        state = torch.load(final, map_location="cpu", weights_only=False)
        load_weights(model, state, source=str(final))
        model.history, model.cache_key = state.get("history", {}), f"{name}-{key}"
        log(f"[cache] loaded {name} from {final}")
        return model.eval()
    log(f"[cache] {name} not in the cache: training it (config {key})")
    history = train(model, ckpt)
    if is_main():
        save_atomic({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "arch": architecture(model),
                     "config": config, "history": history}, final)
        ckpt.unlink(missing_ok=True)
    barrier()
    model.history, model.cache_key = history, f"{name}-{key}"
    return model.cpu().eval()


def cached_json(name: str, config: dict, compute, log=print):
    """Return a JSON-serialisable result from the cache, or ``compute()`` it and store it atomically."""
    path = cache_dir() / f"{name}-{config_key(config)}.json"
    if path.exists():
        return json.loads(path.read_text())["result"]
    result = compute()
    if is_main():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"config": config, "result": result}, indent=1, default=str))
        os.replace(tmp, path)
    return result
