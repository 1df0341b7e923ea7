"""A cache of trained models and results, keyed by their full configuration.

A model is looked up first among the models shipped with the project
(``models/``, made by ``make models``, see :mod:`rotlib.store`), then in
the cache folder (``$ROTLIB_CACHE`` or ``cache/`` in the checkout), and
trained only when it is in neither. Every load and every training run says
so; nothing is retrained silently.

Safety: file names are a safe slug plus a hash, always inside the folder;
an unreadable entry is renamed ``*.corrupt``, reported, and computed again;
a lock file per entry makes a second process asking for the same entry
wait for the first and then load its result; temporary files left by an
interrupted save are removed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from pathlib import Path

from . import store
from .settings import current
from .distributed import barrier, is_distributed, is_main, on_main, world_size
from .files import can_lock, locked, write_text_atomic
from .checkpoints import architecture, load_checkpoint, load_weights, save_atomic, set_aside


class ModelNotShippedError(RuntimeError):
    """A model that must be shipped (``ROTLIB_SHIPPED_ONLY=1``) is not."""


def cache_dir() -> Path:
    """``$ROTLIB_CACHE``, else ``cache/`` in the project folder (:mod:`rotlib.settings`)."""
    return current().cache


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-serialisable config."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def entry_stem(name: str, config: dict) -> str:
    """A cache entry's file name without suffix: the name's safe characters, then a hash.

    Only letters, digits, ``.``, ``_`` and ``-`` are kept, so a name such as
    ``rotnet-folder:../../x`` stays a plain file name inside the cache folder;
    when characters were replaced, the name itself goes into the hash.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60].strip("._-") or "entry"
    return f"{slug}-{config_key(config if slug == name else {'name': name, 'config': config})}"


@contextlib.contextmanager
def _exclusive(stem: str, log):
    """Hold the entry's lock file while it is looked up and computed, and remove its stale temporary files.

    Without ``fcntl`` (Windows) or under torchrun (the ranks train together) there is no lock.
    """
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if not can_lock() or is_distributed():
        yield
        return
    with locked(folder / f"{stem}.lock", on_wait=lambda: log(f"[cache] another process is computing {stem}: waiting for it")):
        for tmp in folder.glob(f"{stem}.*.tmp*"):     # left by a killed save (we hold the lock: not in use)
            tmp.unlink(missing_ok=True)
        yield


def _shipped(name: str, stem: str) -> tuple[dict, str] | None:
    """A shipped model's state and where it came from, or None."""
    ready = store.find(stem)
    if ready is None:
        return None
    return store.load_state(ready), f"shipped model {name} from {ready.parent.name}/{ready.name}"


def _cached(name: str, final: Path, log) -> tuple[dict, str] | None:
    """A cached model's state and where it came from, or None (an unreadable entry is set aside: under torchrun
    only rank 0 calls this, see :func:`on_main`)."""
    if final.exists():
        state = load_checkpoint(final, log=lambda m: log(f"[cache] {m}; training it again"))
        if state is not None:
            return state, f"{name} from {final}"
    return None


def model_path(name: str, config: dict) -> Path:
    """The file :func:`cached_model` loads for ``(name, config)``: the shipped model when there is one (checked
    against its manifest), else its cache entry (which may not exist yet). Found without training anything."""
    stem = entry_stem(name, config)
    return store.find(stem) or cache_dir() / f"{stem}.pt"


def cached_model(name: str, config: dict, build, train, log=print):
    """Return ``build()`` with weights shipped in ``models/``, or from the cache, or trained by
    ``train(model, checkpoint_path)``.

    ``train`` returns a history dict, stored beside the weights (with the
    training time and the machine) and set as ``model.history``. An
    interrupted training resumes from its checkpoint. Under torchrun rank 0
    looks the model up and hands its decision and weights to every rank, so
    all ranks load or all ranks train.
    """
    stem = entry_stem(name, config)
    folder = cache_dir()
    final, ckpt = folder / f"{stem}.pt", folder / f"{stem}.ckpt"
    model = build()
    found = on_main(lambda: _shipped(name, stem))
    if found is None and current().shipped_only:
        raise ModelNotShippedError(
            f"{name} ({stem}) is not shipped in {store.models_dir()}, and ROTLIB_SHIPPED_ONLY=1 (make test) forbids "
            "training it: add it to rotlib.paper.models, the list of models the notebooks load, and run `make models`")
    if found is None:
        with _exclusive(stem, log):
            found = on_main(lambda: _cached(name, final, log))
            if found is None:
                log(f"[cache] {name} not shipped and not in the cache: training it (config {stem})")
                t0 = time.time()
                history = train(model, ckpt)
                seconds = round(time.time() - t0, 1)         # this run's share when it resumed from a checkpoint
                if is_main():
                    save_atomic({"model": {k: v.cpu() for k, v in model.state_dict().items()},
                                 "arch": architecture(model), "config": json.loads(json.dumps(config, default=str)),
                                 "history": history, "train_seconds": seconds,
                                 "trained_by": {"code": store.code_version(), "machine": store.machine(),
                                                "world_size": world_size()}}, final)
                    ckpt.unlink(missing_ok=True)
                barrier()
                model.history = history
                return model.cpu().eval()
    state, source = found
    load_weights(model, state, source=source)
    model.history = state.get("history", {})
    log(f"[cache] loaded {source}")
    return model.eval()


def cached_json(name: str, config: dict, compute, log=print):
    """Return a JSON-serialisable result from the cache, else shipped in ``models/measures/`` (the probes' results,
    :func:`rotlib.store.find_measure`), else ``compute()`` it and store it atomically in the cache.

    Under torchrun rank 0 reads the entry and hands it to every rank; when there is none, every rank computes it
    (the computation may train, which needs all ranks) and rank 0 stores it."""
    stem = entry_stem(name, config)
    path = cache_dir() / f"{stem}.json"

    def read():
        if path.exists():
            try:
                return {"result": json.loads(path.read_text())["result"]}
            except (ValueError, KeyError, TypeError) as err:      # truncated or foreign file
                set_aside(path, err, lambda m: log(f"[cache] {m}; computing it again"))
        return None

    with _exclusive(stem, log):
        found = on_main(read)
        if found is None and current().shipped_measures:    # a probe's result made by `make measures`
            found = on_main(lambda: store.find_measure(name, stem, config))
        if found is not None:
            return found["result"]
        result = compute()
        if is_main():
            write_text_atomic(path, json.dumps({"config": config, "result": result}, indent=1, default=str))
        barrier()
    return result
