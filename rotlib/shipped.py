"""``make models``: train every model the notebooks load that is not yet shipped, and ship it.

The list of those models is :func:`rotlib.paper.models` (the notebooks' own
choices: seeds, label budgets, rotation sets); this module orders it, adds
the first seed's snapshots (Fig. 5(a)), estimates the cost, and hands each
finished model to the store (:mod:`rotlib.store`, ``models/``).

``python -m rotlib.shipped`` (``make models``) prints what it will train and
about how long it takes, then trains what is missing (each training resumes
from its last epoch's checkpoint) and ships each model as it finishes;
``--list`` only prints the plan. To re-make a model, delete its two files
(and its entry in ``cache/``).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from . import experiments as E
from . import paper as P
from . import store
from .cache import cache_dir
from .memory import keep_freed_memory
from .profiles import get_profile
from .rotations import rotation_angles


@dataclass
class Job:
    """One model the notebooks load: a label, its :class:`rotlib.experiments.ModelSpec`, a rough cost estimate."""
    label: str
    spec: E.ModelSpec
    seconds: float

    def shipped(self) -> bool:
        return (store.models_dir() / f"{self.spec.stem}.pt").exists()


def cost(profile, spec: E.ModelSpec) -> float:
    """Rough seconds on a 2-core CPU: ~30 s per 20,000 images seen (one epoch of the width-64 RotNet on 5,000
    images in 4 rotations, measured ~18 s on an Intel Xeon with AMX and ~30 s on an AMD EPYC without it: the
    slower is quoted), scaled by the width squared."""
    c = spec.config
    if c["kind"] == "rotnet":
        images = (profile.n_train or 5000) * (len(rotation_angles(c["rotations"])) if c["mode"] == "all" else 1)
    else:
        images = len(E.labelled_subset(profile, c["per_class"]))
    return 30.0 * c["train"]["epochs"] * images / 20000 * (profile.width / 64) ** 2


def plan(profile) -> list[Job]:
    """Every model the notebooks load (:func:`rotlib.paper.models`), in that order; the first seed's main RotNet
    keeps Fig. 5(a)'s snapshots as it trains."""
    first = E.rotnet_spec(profile, seed=profile.seeds[0])
    jobs = []
    for label, spec in P.models(profile):
        if spec.stem == first.stem:
            spec = E.rotnet_spec(profile, seed=profile.seeds[0], on_epoch_end=snapshotter(first))
            label += " (with snapshots)"
        jobs.append(Job(label, spec, cost(profile, spec)))
    return jobs


def snapshotter(spec: E.ModelSpec):
    """An ``on_epoch_end`` that keeps the weights after each of :func:`rotlib.store.snapshot_epochs` on the way to
    the model ``spec`` (Fig. 5(a))."""
    epochs, seed = spec.config["train"]["epochs"], spec.config["seed"]

    def keep(epoch: int, model) -> None:
        if epoch in store.snapshot_epochs(epochs):
            store.keep_snapshot(spec.stem, seed, epoch, model)
    return keep


def missing_snapshots(spec: E.ModelSpec) -> list[int]:
    return [e for e in store.snapshot_epochs(spec.config["train"]["epochs"])
            if not store.snapshot_path(spec.stem, e).exists()]


def replay_snapshots(spec: E.ModelSpec, profile, log=print) -> None:
    """Keep the missing snapshots of an already trained main RotNet: train the first epochs of its recipe again
    (same seed, same schedule; not cached) and compare their losses with the shipped model's history."""
    missing = missing_snapshots(spec)
    if not missing:
        return
    log(f"snapshots of {spec.stem}: epochs {missing} missing: training the first {max(missing)} epochs again")
    replay = E.rotnet_spec(profile, seed=spec.config["seed"], on_epoch_end=snapshotter(spec))
    model = replay.build()
    history = replay.train(model, None, stop_after=max(missing))
    shipped_loss = store.read_manifest(spec.stem)["history"]["epoch_loss"][:len(history["epoch_loss"])]
    gap = max(abs(a - b) for a, b in zip(history["epoch_loss"], shipped_loss))
    log(f"  snapshots after epochs {missing} kept; the replayed epochs' loss differs from the shipped model's "
        f"history by at most {gap:.2g}")


def ship_all(profile, log=print) -> None:
    """Train (or load from the cache) every model of :func:`plan` not yet shipped, and ship each as it is ready."""
    jobs = plan(profile)
    missing = [j for j in jobs if not j.shipped()]
    log(f"make models: {len(jobs)} models, {len(missing)} to train, roughly "
        f"{sum(j.seconds for j in missing) / 60:.0f} min on 2 CPU cores (less on a CPU with AMX)")
    for j in jobs:
        log(f"  {'train  ' if j in missing else 'shipped'}  {j.label}  (~{j.seconds / 60:.0f} min)")
    for i, job in enumerate(missing, 1):
        log(f"[{i}/{len(missing)}] {job.label}")
        job.spec.get(exact=True)                 # the recipe as it is looked up, even in emulated bf16
        store.ship(job.label, job.spec, cache_dir() / f"{job.spec.stem}.pt")
        log(f"  shipped models/{job.spec.stem}.pt ({store.read_manifest(job.spec.stem)['train_seconds'] or 0:.0f} s "
            "of training)")
    replay_snapshots(E.rotnet_spec(profile, seed=profile.seeds[0]), profile, log)   # a main model trained before
                                                                                   # snapshots were kept


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotlib.shipped", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    if args.list:
        for job in plan(profile):
            print(f"{'shipped' if job.shipped() else 'missing'}  {job.spec.stem}  {job.label}")
        print(f"snapshots of seed {profile.seeds[0]}: missing after epochs "
              f"{missing_snapshots(E.rotnet_spec(profile, seed=profile.seeds[0]))}")
        return 0
    keep_freed_memory()
    t0 = time.time()
    ship_all(profile)
    print(f"make models: done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
