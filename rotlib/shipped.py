"""Models trained once by ``make models`` and shipped with the project in ``models/``.

A fresh clone runs the notebook series in minutes because the long trainings
(a 32-epoch RotNet takes about 10 minutes on a 2-core CPU) ran once, here:
:func:`rotlib.cache.cached_model` looks in ``models/`` before the cache
folder and before training anything, and says "loaded shipped model".

Each shipped model is two files, named by its cache entry (its full
configuration's hash, see :func:`rotlib.cache.entry_stem`):

- ``<stem>.pt``: the cache's format (weights, architecture, configuration,
  training history), loadable with ``torch.load(weights_only=True)``;
- ``<stem>.json``: its manifest: the configuration, the per-epoch history,
  the training time, the code version and machine that made it, and the
  sha256 of the ``.pt`` file, which is checked at every load.

Snapshots of one long run (notebook 2's Fig. 5(a): what the features are
worth after 1, 2, 4, ... epochs) live in ``models/snapshots/``.

``python -m rotlib.shipped`` (``make models``) prints what it will train and
about how long it takes, then trains what is missing (each training resumes
from its last epoch's checkpoint) and ships each model as it finishes;
``--list`` only prints the plan. To re-make a model, delete its two files
(and its entry in ``cache/``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .files import write_atomic, write_text_atomic
from .settings import PACKAGE, current

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
    from .checkpoints import load_checkpoint
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
        from . import __version__
        return f"rotlib {__version__}"


def machine() -> dict:
    """What made a model: the CPU (training noise differs between CPU kinds), the core count, torch's version."""
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = next(line for line in info.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "amx_bf16": " amx_bf16" in flags, "cores": os.cpu_count(),
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


# ---------------------------------------------------------------- what `make models` trains
@dataclass
class Job:
    """One model the notebooks use: its :class:`rotlib.experiments.ModelSpec` and a rough estimate of its cost."""
    label: str
    spec: object
    seconds: float

    def shipped(self) -> bool:
        return (models_dir() / f"{self.spec.stem}.pt").exists()


def rotnet_cost(profile, epochs: int) -> float:
    """Rough seconds of a RotNet on a 2-core CPU, scaled from the width-64 RotNet on 5,000 images (measured: ~18 s
    per epoch on an Intel Xeon with AMX, ~30 s on an AMD EPYC without it; the slower is quoted)."""
    return 30.0 * epochs * (profile.n_train or 5000) / 5000 * (profile.width / 64) ** 2


def plan(profile, label_budgets=(None, 20, 100)) -> list[Job]:
    """Every model the notebooks load, in the order `make models` trains them: the main RotNet per seed (the first
    with Fig. 5(a)'s snapshots), the supervised baselines per label budget, then the ablations (one random rotation
    per image; 8, 2 and 2 rotations) with their own 4-rotation reference."""
    from . import experiments as E
    from .rotations import canonical_rotation_set
    jobs = []
    for seed in profile.seeds:
        on_epoch = snapshotter(profile, seed) if seed == profile.seeds[0] else None
        jobs.append(Job(f"RotNet, 4 rotations, {profile.rotnet_epochs} epochs, seed {seed}"
                        + (" (with snapshots)" if on_epoch else ""),
                        E.rotnet_spec(profile, seed=seed, on_epoch_end=on_epoch),
                        rotnet_cost(profile, profile.rotnet_epochs)))
    for per_class in label_budgets:              # notebook 7's labels per class (None: all)
        for seed in profile.seeds:
            jobs.append(Job(f"supervised from scratch, {per_class or 'all'} labels/class, seed {seed}",
                            E.supervised_spec(profile, per_class, seed=seed),
                            rotnet_cost(profile, profile.supervised_epochs) / 4 if per_class is None else 20))
    ablation = profile.ablation
    for seed in ablation["seeds"]:
        for rotations, mode in (("4", "all"), ("4", "random"), ("8", "all"), ("2-0/180", "all"),
                                ("2-90/270", "all")):
            jobs.append(Job(f"ablation: RotNet, {canonical_rotation_set(rotations)} rotations, {mode}, "
                            f"{ablation['epochs']} epochs, seed {seed}",
                            E.rotnet_spec(profile, rotations, mode, seed=seed, epochs=ablation["epochs"]),
                            rotnet_cost(profile, ablation["epochs"]) * (1.3 if rotations == "8" else 1.0)))
    unique = {}                                   # an ablation budget equal to the main one shares its models:
    for j in jobs:                                # keep the first job (the main model's, with the snapshotter)
        unique.setdefault(j.spec.stem, j)
    return list(unique.values())


def snapshot_path(profile, seed: int, epoch: int) -> Path:
    return models_dir() / "snapshots" / f"rotnet-{profile.dataset}-s{seed}-e{profile.rotnet_epochs}-at{epoch:02d}.pt"


def snapshot_epochs(profile) -> list[int]:
    """The epochs after which the first seed's main RotNet is kept (its last epoch is the shipped model)."""
    return [e for e in SNAPSHOT_EPOCHS if e < profile.rotnet_epochs]


def snapshotter(profile, seed: int):
    """An ``on_epoch_end`` that keeps the weights after each of :func:`snapshot_epochs` (Fig. 5(a)), each with a
    small manifest (``<name>.json``: epoch, seed, the model it leads to, sha256)."""
    from .checkpoints import architecture, save_atomic
    from . import experiments as E
    final = E.rotnet_spec(profile, seed=seed).stem

    def keep(epoch: int, model) -> None:
        if epoch in snapshot_epochs(profile):
            path = snapshot_path(profile, seed, epoch)
            save_atomic({"model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                         "arch": architecture(model), "epoch": epoch}, path)
            write_text_atomic(path.with_suffix(".json"), json.dumps(
                {"format": FORMAT, "of": final, "seed": seed, "epoch": epoch, "sha256": sha256(path),
                 "bytes": path.stat().st_size}, indent=1) + "\n")
    return keep


def find_snapshot(profile, seed: int, epoch: int) -> Path | None:
    """A kept snapshot of this profile's main RotNet, checked against its manifest; None when it was not kept, or
    when the file there was kept on the way to another model (the manifest's ``of``: a changed recipe, e.g.
    ``--set lr=...``, shares the file name but must not draw Fig. 5(a) from the shipped model's epochs)."""
    from . import experiments as E
    path = snapshot_path(profile, seed, epoch)
    if not path.exists():
        return None
    manifest = path.with_suffix(".json")
    if not manifest.exists() or manifest_at(manifest)["sha256"] != sha256(path):
        raise ShippedModelError(f"{path} does not match its manifest {manifest.name}; restore both with "
                                f"`git checkout -- {path.parent}` or re-make them with `make models`")
    if manifest_at(manifest).get("of") != E.rotnet_spec(profile, seed=seed).stem:
        return None
    return path


def missing_snapshots(profile, seed: int) -> list[int]:
    return [e for e in snapshot_epochs(profile) if not snapshot_path(profile, seed, e).exists()]


def replay_snapshots(profile, seed: int, log=print) -> None:
    """Keep the missing snapshots of an already trained main RotNet: train the first epochs of its recipe again
    (same seed, same schedule; not cached) and compare their losses with the shipped model's history."""
    from . import experiments as E
    missing = missing_snapshots(profile, seed)
    if not missing:
        return
    log(f"snapshots of seed {seed}: epochs {missing} missing: training the first {max(missing)} epochs again")
    spec = E.rotnet_spec(profile, seed=seed, on_epoch_end=snapshotter(profile, seed))
    model = spec.build()
    history = spec.train(model, None, stop_after=max(missing))
    shipped_loss = read_manifest(spec.stem)["history"]["epoch_loss"][:len(history["epoch_loss"])]
    gap = max(abs(a - b) for a, b in zip(history["epoch_loss"], shipped_loss))
    log(f"  snapshots after epochs {missing} kept; the replayed epochs' loss differs from the shipped model's "
        f"history by at most {gap:.2g}")


def ship_all(profile, log=print, **plan_options) -> None:
    """Train (or load from the cache) every model of :func:`plan` not yet shipped, and ship each as it is ready."""
    from .cache import cache_dir
    jobs = plan(profile, **plan_options)
    missing = [j for j in jobs if not j.shipped()]
    log(f"make models: {len(jobs)} models, {len(missing)} to train, roughly "
        f"{sum(j.seconds for j in missing) / 60:.0f} min on 2 CPU cores (less on a CPU with AMX)")
    for j in jobs:
        log(f"  {'train  ' if j in missing else 'shipped'}  {j.label}  (~{j.seconds / 60:.0f} min)")
    for i, job in enumerate(missing, 1):
        log(f"[{i}/{len(missing)}] {job.label}")
        job.spec.get()
        ship(job.label, job.spec, cache_dir() / f"{job.spec.stem}.pt")
        log(f"  shipped models/{job.spec.stem}.pt ({read_manifest(job.spec.stem)['train_seconds'] or 0:.0f} s of "
            "training)")
    replay_snapshots(profile, profile.seeds[0], log)   # e.g. a main model trained before snapshots were kept


def main(argv=None) -> int:
    from .memory import keep_freed_memory
    from .profiles import get_profile
    parser = argparse.ArgumentParser(prog="python -m rotlib.shipped", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    if args.list:
        for job in plan(profile):
            print(f"{'shipped' if job.shipped() else 'missing'}  {job.spec.stem}  {job.label}")
        print(f"snapshots of seed {profile.seeds[0]}: missing after epochs {missing_snapshots(profile, profile.seeds[0])}")
        return 0
    keep_freed_memory()
    t0 = time.time()
    ship_all(profile)
    print(f"make models: done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
