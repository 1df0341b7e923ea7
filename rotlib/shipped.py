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
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import experiments as E
from . import paper as P
from . import store
from .cache import cache_dir
from .devices import emulated_bf16, pick_device
from .identity import digest, run_fields
from .memory import keep_freed_memory
from .profiles import PROFILES, get_profile
from .rotations import rotation_angles
from .settings import current

SHIPPED_PLANS = ("quick", "quick-ablations32")   # models/ holds the plans of these profiles: quick's (the notebooks'),
                                                # and issue 32's ablations as they are trained (rotlib.profiles)


@dataclass
class Job:
    """One model the notebooks load: a label, its :class:`rotlib.experiments.ModelSpec`, a rough cost estimate."""
    label: str
    spec: E.ModelSpec
    seconds: float

    def shipped(self) -> bool:
        return (store.models_dir() / f"{self.spec.stem}.pt").exists()


SECONDS_PER_EPOCH = 30.0              # cost(): an epoch of the width-64 RotNet, 5,000 images x 4 rotations, 2 cores
EMULATED_SECONDS_PER_EPOCH = (430.0, 560.0)   # the same in emulated bf16 (AMD EPYC without AVX-512: 1.37 s a step of
                                              # 16 x 4 images in issue 32, 1.8 s in an earlier session; 313 steps)


def cost(profile, spec: E.ModelSpec) -> float:
    """Rough seconds on a 2-core CPU with native bf16: ``SECONDS_PER_EPOCH`` per 20,000 images seen (one epoch of
    the width-64 RotNet on 5,000 images in 4 rotations, measured ~18 s on an Intel Xeon with AMX and ~30 s on an AMD
    EPYC without it: the slower is quoted), scaled by the width squared."""
    c = spec.config
    if c["kind"] == "rotnet":
        images = (profile.n_train or 5000) * (len(rotation_angles(c["rotations"])) if c["mode"] == "all" else 1)
    else:
        images = len(E.labelled_subset(profile, c["per_class"]))
    return SECONDS_PER_EPOCH * c["train"]["epochs"] * images / 20000 * (profile.width / 64) ** 2


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


def unplanned() -> list[str]:
    """The models shipped in models/ that no plan of :data:`SHIPPED_PLANS` lists (orphans: delete them, or add
    their profile)."""
    planned = {job.spec.stem for name in SHIPPED_PLANS for job in plan(PROFILES[name])}   # as shipped: no $ROTLIB_*
    shipped = {p.stem for pattern in ("*.pt", "*.json") for p in store.models_dir().glob(pattern)}
    return sorted(shipped - planned)


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
    """Train (or load from the cache) every model of :func:`plan` not yet shipped, cheapest first, and ship each as
    it is ready."""
    jobs = plan(profile)
    # cheapest first (stable: plan order within a cost): the seeds of one variant cost the same and finish together,
    # and a run cut short has shipped the most models and whole comparisons
    missing = sorted((j for j in jobs if not j.shipped()), key=lambda j: j.seconds)
    log(f"make models: {len(jobs)} models, {len(missing)} to train, roughly "
        f"{sum(j.seconds for j in missing) / 60:.0f} min on 2 CPU cores (less on a CPU with AMX)")
    device = pick_device(profile.device)
    slow = sum(j.seconds for j in missing if emulated_bf16(device, j.spec.config["train"]["precision"]))
    if slow:
        lo, hi = (slow * s / SECONDS_PER_EPOCH / 3600 for s in EMULATED_SECONDS_PER_EPOCH)
        log(f"  this CPU has no native bf16 (AVX-512 BF16 or AMX): the recipe's bf16 is emulated, so about {lo:.1f} to "
            f"{hi:.1f} hours here; a CPU with native bf16 trains the same models in the time above")
    for j in [j for j in jobs if j not in missing] + missing:          # in the order they are trained
        log(f"  {'train  ' if j in missing else 'shipped'}  {j.label}  (~{j.seconds / 60:.0f} min)")
    for i, job in enumerate(missing, 1):
        log(f"[{i}/{len(missing)}] {job.label}")
        job.spec.get(exact=True)                 # the recipe as it is looked up, even in emulated bf16
        store.ship(job.label, job.spec, cache_dir() / f"{job.spec.stem}.pt")
        log(f"  shipped models/{job.spec.stem}.pt ({store.read_manifest(job.spec.stem)['train_seconds'] or 0:.0f} s "
            "of training)")
    replay_snapshots(E.rotnet_spec(profile, seed=profile.seeds[0]), profile, log)   # a main model trained before
                                                                                   # snapshots were kept


# ---------------------------------------------------------------- measures: the probes' results (make measures)
def backbones(profile) -> dict[str, tuple[str, object]]:
    """Every network the notebooks probe, by the digest of its weights (what a measure's key names it by):
    ``{digest: (label, network)}`` for the shipped models, the first seed's kept snapshots and the random-init
    networks of the profile's seeds."""
    nets = [(label, spec.get(log=lambda m: None)) for label, spec in P.models(profile) if store.find(spec.stem)]
    nets += [(f"snapshot of the seed-{profile.seeds[0]} RotNet after epoch {e}", E.rotnet_snapshot(profile, e))
             for e in E.kept_snapshots(profile)]
    nets += [(f"random init, seed {s}", E.random_init(profile, seed=s)) for s in profile.seeds]
    return {digest(net): (label, net) for label, net in nets}


def collect_measures(folder, profile, log=print) -> dict[str, dict]:
    """The measures (:data:`rotlib.store.MEASURES`) in the cache ``folder`` in the profile's evaluation precision on
    this machine, measured on a network of :func:`backbones` (or on pixels), as shipped measures: ``{stem:
    {"config", "result", "backbone": label}}``."""
    nets = backbones(profile)
    precision = evaluation_precision(profile)
    out, foreign = {}, 0
    for path in sorted(Path(folder).glob("*.json")):
        if measurement(path.stem) not in store.MEASURES:
            continue
        entry = json.loads(path.read_text())
        config = entry["config"]
        if config["precision"] != precision:
            continue
        net = _network(config)
        if net is not None and net not in nets:
            foreign += 1                       # measured on a network that is not shipped: not shipped either
            continue
        label = nets[net][0] if net is not None else "pixels"
        out[path.stem] = {"config": config, "result": entry["result"], "backbone": label}
    log(f"{len(out)} measures collected from {folder}; {foreign} on networks that are not shipped left out")
    return out


def measurement(stem: str) -> str:
    """What a measure's cache stem measures ("probe", "rotacc", ...): the name before its key's hash."""
    return stem.rsplit("-", 1)[0]


def _network(config: dict) -> str | None:
    """The digest of the network a measure's key names (``backbone`` of a probe, ``model`` of an accuracy); None
    for a probe on pixels."""
    return config.get("backbone", config.get("model"))


def _family(entry: dict) -> str:
    label = entry["backbone"]
    return label.split(",")[0].split(" of ")[0].split(":")[0]   # "RotNet", "supervised ...", "snapshot", "random init"


def sample_measures(entries: dict[str, dict], precisions) -> list[str]:
    """One entry of every kind of measure in ``precisions``: the same measurement (probe, rotation probe, pixels),
    classifier, label budget, kind of network and precision. Within a kind the entries are ordered by seed, and the
    n-th kind (in sorted order) takes its n-th entry, round the list: the seeds and blocks are shared out over the
    kinds, the same sample on every run."""
    groups = {}
    for stem, e in sorted(entries.items(), key=lambda kv: (kv[1]["config"].get("seed", 0), kv[0])):
        c = e["config"]
        if c["precision"] not in precisions:
            continue
        kind = (measurement(stem), c.get("classifier"), c.get("per_class"), c.get("n_images"), _family(e),
                c["precision"])
        groups.setdefault(kind, []).append(stem)
    return [stems[i % len(stems)] for i, (_, stems) in enumerate(sorted(groups.items(), key=str))]


def evaluation_precision(profile) -> str:
    """The precision the profile's probes are computed in on this machine, so the shipped measures its notebooks
    read here: bf16 with AVX-512 BF16, AMX or a GPU, else fp32 (``eval_precision="auto"``)."""
    return run_fields(profile.device, profile.evaluation_precision)["precision"]


def remeasure(stem: str, entry: dict, profile, nets: dict) -> float:
    """Compute a shipped measure again with today's code (its key's settings, on the network its key names)."""
    c = entry["config"]
    p = profile.replace(eval_precision=c["precision"])
    kind = measurement(stem)
    if kind == "pixels":
        return E.pixel_probe(p, c["classifier"], c["per_class"], seed=c["seed"])
    net = nets[_network(c)][1]
    if kind == "rotacc":
        return E.rotation_accuracy(net, p, c["rotations"])
    if kind == "supacc":
        return E.supervised_accuracy(net, p)
    if kind == "rotprobe":
        return E.rotation_probe(net, p, c["block"], c["classifier"], c["n_images"], seed=c["seed"])
    return E.probe(net, p, c["block"], c["classifier"], c["per_class"], seed=c["seed"])


def recheck_measures(profile, stems=None, log=print) -> list[dict]:
    """Compute a sample of the shipped measures again (:func:`sample_measures`, in the precision this machine's
    notebooks read, :func:`evaluation_precision`; CI on each CPU kind checks its own) and return ``[{"stem", "backbone", "precision", "shipped", "fresh", "same_key"}]``. ``same_key``: today's code
    stored its result under the shipped entry's stem (it computes the same key). Needs a throw-away cache and
    ``ROTLIB_SHIPPED_MEASURES=0``, else it would only read the shipped results back."""
    if current().shipped_measures:
        raise RuntimeError("recheck_measures computes the measures: set ROTLIB_SHIPPED_MEASURES=0 and ROTLIB_CACHE "
                           "to an empty folder (python -m rotlib.shipped --recheck does)")
    entries = store.read_measures()
    stems = sample_measures(entries, [evaluation_precision(profile)]) if stems is None else stems
    nets = backbones(profile)
    out = []
    for i, stem in enumerate(stems, 1):
        t0 = time.time()
        fresh = remeasure(stem, entries[stem], profile, nets)
        row = {"stem": stem, "backbone": entries[stem]["backbone"], "precision": entries[stem]["config"]["precision"],
               "shipped": entries[stem]["result"], "fresh": fresh, "same_key": (cache_dir() / f"{stem}.json").exists()}
        log(f"[{i}/{len(stems)}] {stem} ({row['backbone']}): shipped {row['shipped']:.2f}, now {fresh:.2f} "
            f"({time.time() - t0:.1f} s)")
        out.append(row)
    return out


@contextlib.contextmanager
def environment(**variables):
    """Set environment variables for a block of the command line, and put them back."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotlib.shipped", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--measures", metavar="CACHE", help="ship the probes' results found in this cache folder "
                        "(make measures) into models/measures/")
    parser.add_argument("--recheck", action="store_true", help="compute a sample of the shipped measures again "
                        "in a throw-away cache and compare")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    if args.measures:
        entries = collect_measures(args.measures, profile)
        path = store.ship_measures(entries, {"code": store.code_version(), "machine": store.machine()})
        print(f"shipped {len(store.read_measures())} measures in {path}")
        return 0
    if args.recheck:
        with tempfile.TemporaryDirectory() as tmp, environment(ROTLIB_CACHE=tmp, ROTLIB_SHIPPED_MEASURES="0"):
            rows = recheck_measures(profile)
        moved = [r for r in rows if r["fresh"] != r["shipped"]]
        other_key = [r["stem"] for r in rows if not r["same_key"]]
        print(f"{len(rows)} measures computed again (the shipped ones in {evaluation_precision(profile)}, the "
              f"precision of this CPU's probes): {len(rows) - len(moved)} identical, {len(moved)} not "
              f"(largest move {max([abs(r['fresh'] - r['shipped']) for r in rows] or [0]):.2f} points)"
              + (f"; today's code computes another key for {other_key}: run `make measures`" if other_key else ""))
        return 1 if other_key else 0
    if args.list:
        for job in plan(profile):
            print(f"{'shipped' if job.shipped() else 'missing'}  {job.spec.stem}  {job.label}")
        print(f"snapshots of seed {profile.seeds[0]}: missing after epochs "
              f"{missing_snapshots(E.rotnet_spec(profile, seed=profile.seeds[0]))}")
        others = {job.spec.stem for job in plan(profile)}
        for name in SHIPPED_PLANS:
            extra = [job for job in plan(PROFILES[name]) if job.spec.stem not in others and job.shipped()]
            others |= {job.spec.stem for job in extra}
            for job in extra:
                print(f"shipped  {job.spec.stem}  {job.label}  (in the plan of profile {name!r}, not this one)")
        for stem in unplanned():
            print(f"orphan   {stem}  in no plan of {SHIPPED_PLANS}: delete it, or add its profile there")
        return 0
    keep_freed_memory()
    t0 = time.time()
    ship_all(profile)
    print(f"make models: done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
