"""The store of models trained once by ``make models`` and shipped with the project in ``models/``.

A fresh clone runs the notebook series in minutes because the long trainings
(a 32-epoch RotNet takes about 10 minutes on a 2-core CPU) ran once:
:func:`rotlib.cache.cached_model` looks here (:func:`find`) before the
cache folder and before training anything, and says "loaded shipped model".

Each shipped model is two files, named by its cache entry (its full
configuration's hash, see :func:`rotlib.cache.entry_stem`):

- ``<stem>.pt``: the cache's format (weights, architecture, configuration,
  training history), loadable with ``torch.load(weights_only=True)``;
- ``<stem>.json``: its manifest: the configuration, the per-epoch history,
  the training time, the code version and machine that made it, and the
  sha256 of the ``.pt`` file, which is checked at every load.

Snapshots of one long run (notebook 2's Fig. 5(a): what the features are
worth after 1, 2, 4, ... epochs) live in ``models/snapshots/``, named by
the model they lead to: ``<stem>-atNN.pt`` and its manifest.

This module knows files, not experiments: what is trained and shipped is
decided by :mod:`rotlib.shipped` (``make models``), above the experiments.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from .checkpoints import architecture, load_checkpoint, save_atomic
from .files import write_atomic, write_text_atomic
from .settings import PACKAGE, VERSION, current

FORMAT = 1                              # the manifest's format
SNAPSHOT_EPOCHS = (1, 2, 4, 8, 16, 24)  # Fig. 5(a): the main RotNet of the first seed, after these epochs


class ShippedModelError(RuntimeError):
    """A shipped model does not match its manifest."""


def models_dir() -> Path:
    """``$ROTLIB_MODELS`` or ``models/`` in the project folder (:mod:`rotlib.settings`)."""
    return current().models


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_at(path: Path) -> dict:
    """A manifest's contents; a damaged one (truncated, edited, no sha256) is refused like a damaged weights file:
    its path and how to restore it."""
    try:
        manifest = json.loads(Path(path).read_text())
        if not isinstance(manifest, dict) or "sha256" not in manifest:
            raise ValueError("no sha256 field")
    except ValueError as err:              # json.JSONDecodeError is a ValueError
        raise ShippedModelError(f"the manifest {path} is damaged ({err}); restore it with `git checkout -- {path}` "
                                "or re-make it with `make models`") from None
    return manifest


def read_manifest(stem: str) -> dict:
    return manifest_at(models_dir() / f"{stem}.json")


def find(stem: str) -> Path | None:
    """The shipped weights of cache entry ``stem``, checked against the manifest; None when not shipped."""
    folder = models_dir()
    weights, manifest = folder / f"{stem}.pt", folder / f"{stem}.json"
    if not weights.exists():
        return None
    if not manifest.exists():
        raise ShippedModelError(f"{weights} has no manifest {manifest.name}; restore both with `git checkout -- "
                                f"{folder}` or delete the .pt file to train the model instead")
    expected = manifest_at(manifest)["sha256"]
    if sha256(weights) != expected:
        raise ShippedModelError(f"{weights} does not match the sha256 in {manifest.name} (changed or truncated); "
                                f"restore it with `git checkout -- {weights}` or re-make it with `make models`")
    return weights


def load_state(path: Path) -> dict:
    """A shipped file's saved state; an unreadable one is refused and left where it is (never set aside)."""
    state = load_checkpoint(path, set_aside_unreadable=False)
    if state is None:
        raise ShippedModelError(f"{path} is unreadable; restore it with `git checkout -- {path}`")
    return state


def code_version() -> str:
    """The git commit the code came from (``+dirty`` with uncommitted changes to rotlib/), or the package version."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=PACKAGE, capture_output=True,
                               text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return f"rotlib {VERSION}"


def machine() -> dict:
    """What made a model: the CPU and its native bf16 (AMX, AVX-512 BF16: training noise differs between CPU kinds),
    the core count, torch's version."""
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = next(line for line in info.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "amx_bf16": " amx_bf16" in flags, "avx512_bf16": " avx512_bf16" in flags, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": str(torch.__version__), "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def epoch_history(history: dict) -> dict:
    """The per-epoch part of a training history (the per-step lists stay in the .pt file)."""
    return {k: v for k, v in history.items() if k.startswith("epoch_") or k == "lr"}


def ship(label: str, spec, source: Path) -> Path:
    """Copy the cache entry ``source`` of ``spec`` (a :class:`rotlib.experiments.ModelSpec`) into ``models/`` and
    write its manifest."""
    stem = spec.stem
    folder = models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    state = torch.load(source, map_location="cpu", weights_only=True)
    target = folder / f"{stem}.pt"
    write_atomic(target, lambda tmp: shutil.copyfile(source, tmp))
    manifest = {"format": FORMAT, "label": label, "cache_name": spec.name, "stem": stem, "config": state["config"],
                "arch": state["arch"]["config"], "history": epoch_history(state.get("history", {})),
                "train_seconds": state.get("train_seconds"), "trained_by": state.get("trained_by"),
                "sha256": sha256(target), "bytes": target.stat().st_size}
    write_text_atomic(folder / f"{stem}.json", json.dumps(manifest, indent=1) + "\n")
    return target


# ---------------------------------------------------------------- snapshots (Fig. 5(a))
def snapshot_epochs(epochs: int) -> list[int]:
    """The epochs after which a run of ``epochs`` epochs is kept (its last epoch is the model itself)."""
    return [e for e in SNAPSHOT_EPOCHS if e < epochs]


def snapshot_path(stem: str, epoch: int) -> Path:
    """Where the model ``stem``'s weights after ``epoch`` epochs are kept: named by the model they lead to, so a
    changed recipe (another stem) never finds the shipped run's snapshots."""
    return models_dir() / "snapshots" / f"{stem}-at{epoch:02d}.pt"


def keep_snapshot(stem: str, seed: int, epoch: int, model) -> Path:
    """Keep ``model``'s weights after ``epoch`` on the way to the model ``stem``, with a small manifest
    (``<name>.json``: epoch, seed, the model it leads to (``of``), sha256)."""
    path = snapshot_path(stem, epoch)
    save_atomic({"model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                 "arch": architecture(model), "epoch": epoch}, path)
    write_text_atomic(path.with_suffix(".json"), json.dumps(
        {"format": FORMAT, "of": stem, "seed": seed, "epoch": epoch, "sha256": sha256(path),
         "bytes": path.stat().st_size}, indent=1) + "\n")
    return path


def find_snapshot(stem: str, epoch: int) -> Path | None:
    """The kept snapshot after ``epoch`` of the model ``stem``, checked against its manifest (its sha256, and that
    it was kept on the way to that model); None when it was not kept."""
    path = snapshot_path(stem, epoch)
    if not path.exists():
        return None
    manifest = path.with_suffix(".json")
    if not manifest.exists() or manifest_at(manifest)["sha256"] != sha256(path):
        raise ShippedModelError(f"{path} does not match its manifest {manifest.name}; restore both with "
                                f"`git checkout -- {path.parent}` or re-make them with `make models`")
    if manifest_at(manifest).get("of") != stem:
        raise ShippedModelError(f"{manifest} says it leads to {manifest_at(manifest).get('of')}, not {stem}; "
                                f"restore it with `git checkout -- {path.parent}`")
    return path


# ---------------------------------------------------------------- measures: the probes' results (issue 31)
# the cached results that ship: those that train a classifier head (the slow ones) and the test-set accuracies of
# the shipped networks (a pass over the test images each, many per notebook)
MEASURES = ("probe", "rotprobe", "pixels", "rotacc", "supacc")


def measures_dir() -> Path:
    """``models/measures/``: ``entries.json`` (one cached result per line, by its cache stem: its key, its result,
    the shipped network it was measured on) and ``manifest.json`` (its sha256, what made it)."""
    return models_dir() / "measures"


def read_measures() -> dict[str, dict]:
    """The shipped measures ``{stem: {"config": key, "result": value, "backbone": ...}}``, checked against the
    manifest's sha256 at every read; ``{}`` when none are shipped."""
    folder = measures_dir()
    entries, manifest = folder / "entries.json", folder / "manifest.json"
    if not entries.exists():
        return {}
    if not manifest.exists():
        raise ShippedModelError(f"{entries} has no manifest {manifest.name}; restore both with `git checkout -- "
                                f"{folder}` or re-make them with `make measures`")
    data = entries.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest_at(manifest)["sha256"]:
        raise ShippedModelError(f"{entries} does not match the sha256 in {manifest.name} (changed or truncated); "
                                f"restore it with `git checkout -- {folder}` or re-make it with `make measures`")
    return json.loads(data)["entries"]


def _made_by() -> dict:
    """Who made the shipped measures, per precision (``{}`` when none are shipped)."""
    manifest = measures_dir() / "manifest.json"
    return manifest_at(manifest)["made_by"] if manifest.exists() else {}


def find_measure(name: str, stem: str, config: dict) -> dict | None:
    """The shipped result of cache entry ``stem`` when one is shipped under exactly the key ``config``, else None."""
    if name not in MEASURES:
        return None
    entry = read_measures().get(stem)
    if entry is None or entry["config"] != json.loads(json.dumps(config, default=str)):
        return None
    return entry


def ship_measures(entries: dict[str, dict], made_by: dict) -> Path:
    """Ship ``entries`` (cache stem -> ``{"config", "result", "backbone"}``) as the measures in their precisions:
    they replace every shipped entry of those precisions (none of a network no longer shipped stays); the other
    precision's entries (made on another CPU kind) are kept, with who made them. Writes the manifest; one entry per
    line, so a change reads as a diff."""
    precisions = {e["config"]["precision"] for e in entries.values()}
    kept = {k: e for k, e in read_measures().items() if e["config"]["precision"] not in precisions}
    merged = {**kept, **entries}
    made_by = {**{p: m for p, m in _made_by().items() if p not in precisions}, **{p: made_by for p in precisions}}
    lines = [f"{json.dumps(stem)}: {json.dumps(merged[stem], sort_keys=True)}" for stem in sorted(merged)]
    text = '{"format": %d, "entries": {\n%s\n}}\n' % (FORMAT, ",\n".join(lines))
    folder = measures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "entries.json", text)
    manifest = {"format": FORMAT, "entries": len(merged), "made_by": made_by,      # per precision
                "sha256": hashlib.sha256(text.encode()).hexdigest()}
    write_text_atomic(folder / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return folder / "entries.json"
