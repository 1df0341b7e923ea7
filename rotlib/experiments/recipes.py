"""The networks the paper trains, each a :class:`ModelSpec`: its identity (the cache key) and its recipe.

A spec's ``config`` is everything that makes the model what it is (data,
architecture, the optimisation settings with the precision *resolved*, the
device kind, the key format: :mod:`rotlib.identity`); its ``stem`` names its
cache entry and its shipped file in ``models/``. The identity lives in the
spec, never on the model object.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import store
from ..cache import cached_model, entry_stem, model_path
from ..checkpoints import load_weights
from ..devices import emulated_bf16, pick_device
from ..identity import MODEL_FORMAT, run_fields
from ..models import NetworkInNetwork
from ..profiles import MODES, PROFILES, Profile
from ..rotations import canonical_rotation_set, rotation_angles
from ..train import ClassificationTask, RotationTask, TrainConfig, fit
from .splits import build_network, data_fields, epochs_for, labelled_subset, load_split


def seeded_build(seed: int, build: Callable):
    """``build()`` with torch's global generator seeded by ``seed`` (the weights' initialisation), and the
    generator's state restored afterwards: a caller's random numbers are not changed behind its back."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def train_config(profile: Profile, **settings) -> TrainConfig:
    """A :class:`TrainConfig` for the profile's device, its precision resolved (``auto`` is never a key)."""
    precision = run_fields(profile.device, settings.pop("precision"))["precision"]
    return TrainConfig(precision=precision, **settings)


def model_config(profile: Profile, kind: str, cfg: TrainConfig, **fields) -> dict:
    """A trained network's key: its kind and recipe fields, the architecture, the data, the optimisation, where it
    was trained and the key format."""
    return {"kind": kind, **data_fields(profile), **fields, "blocks": profile.num_blocks, "width": profile.width,
            "train": cfg.__dict__, "device": run_fields(profile.device, cfg.precision)["device"], "format": MODEL_FORMAT}


@dataclass(frozen=True)
class ModelSpec:
    """A trainable model's identity and recipe: ``name`` and ``config`` (its cache key), ``build()`` the untrained
    network, ``train(model, checkpoint)`` its training. :meth:`get` loads it (shipped or cached) or trains it.

    ``native``: where the recipe pins bf16 (the quick profile, so that every machine finds the shipped models by
    their keys) and this CPU would only emulate it (~12x slower than fp32: no AVX-512 BF16 or AMX), the same
    recipe in the machine's native precision, its own model with its own key: what :meth:`get` trains instead when
    this model is not shipped."""
    name: str
    config: dict
    build: Callable
    train: Callable
    native: Callable[[], "ModelSpec"] | None = None

    @property
    def stem(self) -> str:
        """The file name of its cache entry and of its shipped model (``models/<stem>.pt``)."""
        return entry_stem(self.name, self.config)

    def resolved(self) -> "ModelSpec":
        """The model :meth:`get` returns: this one when it is shipped, cached, or trains natively here, else
        :attr:`native`."""
        if self.native is not None and not model_path(self.name, self.config).exists():
            return self.native()
        return self

    @property
    def path(self) -> Path:
        """The file :meth:`get` loads: the shipped model, else its cache entry (which may not exist yet)."""
        spec = self.resolved()
        return model_path(spec.name, spec.config)

    def get(self, exact: bool = False, log=print) -> NetworkInNetwork:
        """The model, shipped, cached or trained now. ``exact=True``: this recipe even where its bf16 would be
        emulated (``make models``, which ships exactly the models the notebooks look up)."""
        spec = self if exact else self.resolved()
        if spec is not self:
            log(f"[cache] {self.name}: this CPU has no native bf16, so a model not shipped is trained in "
                f"{spec.config['train']['precision']} (its own key, {spec.stem}) instead of emulated bf16 (~12x slower)")
        return cached_model(spec.name, spec.config, spec.build, spec.train, log=log)


def _native(profile: Profile, cfg: TrainConfig, make: Callable[[Profile], "ModelSpec"]):
    """``make`` for the profile in this machine's native precision, where ``cfg``'s bf16 would be emulated here."""
    if emulated_bf16(pick_device(profile.device), cfg.precision):
        return lambda: make(profile.replace(precision="auto"))
    return None


def train_rotnet(profile: Profile, rotations: str = "4", mode: str = "all", seed: int = 0,
                 epochs: int | None = None, progress: bool = True, on_epoch_end=None) -> NetworkInNetwork:
    """A RotNet trained on the pretext task (shipped or cached; see :func:`rotnet_spec`)."""
    return rotnet_spec(profile, rotations, mode, seed, epochs, progress, on_epoch_end).get()


def rotnet_spec(profile: Profile, rotations: str = "4", mode: str = "all", seed: int = 0,
                epochs: int | None = None, progress: bool = True, on_epoch_end=None) -> ModelSpec:
    """A RotNet trained on the pretext task.

    ``mode="all"``: each batch holds images in all K rotations (the paper's
    choice). ``mode="random"``: each batch holds ``batch_size*K`` images with
    one random rotation each, for K times the epochs: the same number of
    gradient steps and of rotated images per step, so only the pairing differs
    (equal compute). ``mode="random-images"``: ``batch_size`` images with one
    random rotation each for the same epochs, the comparison as the paper
    words it (the same images per batch: a K-th of the rotated copies seen).

    Rotation sets other than "4" (Table 2) follow ``profile.rotation_budget``:
    ``"epochs"`` (the paper's protocol: ``batch_size`` images x K rotations
    per batch for the same epochs, so 8 rotations cost twice the compute of
    4) or ``"steps"`` (equal compute: ``4*batch_size`` rotated images per
    step and the same number of steps as the 4-rotation model).

    ``epochs`` (default ``profile.rotnet_epochs``) counts epochs of the
    4-rotation model; ``on_epoch_end(epoch, model)`` is passed to :func:`fit`
    (only when the model is trained, not when it is loaded).
    """
    rotations = canonical_rotation_set(rotations)
    k = len(rotation_angles(rotations))
    start = _start_from(profile, rotations, mode, seed)
    epochs = (profile.finetune_epochs if start else profile.rotnet_epochs) if epochs is None else epochs
    b = profile.batch_size
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "random":
        batch, n_epochs = b * k, epochs * k
    elif mode == "random-images":
        batch, n_epochs = b, epochs
    elif k == 4 or profile.rotation_budget == "epochs":
        batch, n_epochs = b, epochs
    else:
        if (4 * b) % k or (4 * epochs) % k:
            raise ValueError(f"rotation_budget='steps' with {k} rotations needs batch_size and epochs that make "
                             f"4*batch_size/{k} and 4*epochs/{k} whole numbers (got {b}, {epochs}); pick multiples "
                             f"of {k // math.gcd(k, 4)} or use rotation_budget='epochs'")
        batch, n_epochs = 4 * b // k, 4 * epochs // k
    cfg = train_config(profile, epochs=n_epochs, batch_size=batch, lr=profile.finetune_lr if start else profile.lr,
                       milestones=profile.rotnet_milestones, seed=seed, precision=profile.precision)
    config = model_config(profile, "rotnet", cfg, rotations=rotations, mode=mode, seed=seed,
                          **({"start": start.stem} if start else {}))
    data = load_split(profile, "train")

    def build():
        net = seeded_build(seed, lambda: build_network(profile, k))
        if start:                              # fine-tune: the shipped RotNet's weights, then this folder's epochs
            net.load_state_dict(start.get().state_dict())
        return net

    def train(model, ckpt, stop_after=None, max_steps=None):
        task = RotationTask(data.normalize, rotations, MODES[mode], augment=profile.augment)
        return fit(model, data, task, cfg, ckpt, profile.device, deterministic=profile.deterministic,
                   desc=f"RotNet[{rotations},{mode}]", progress=progress, on_epoch_end=on_epoch_end,
                   stop_after=stop_after, max_steps=max_steps)

    native = _native(profile, cfg, lambda p: rotnet_spec(p, rotations, mode, seed, epochs, progress, on_epoch_end))
    return ModelSpec(f"rotnet-{profile.dataset}", config, build, train, native)


def _start_from(profile: Profile, rotations: str, mode: str, seed: int) -> ModelSpec | None:
    """For ``folder:PATH`` (your own photos) with ``profile.folder_start == "shipped"``: the shipped cifar10-5k RotNet
    of the same architecture, which the folder's RotNet fine-tunes (4 rotations, all in one batch). None otherwise:
    train from scratch.

    Measured on a held-out folder of 4,400 natural photos (issue 19): fine-tuning a 32-epoch CIFAR RotNet for
    8 epochs at lr 0.02 gave a better RotNet and better features than 16 epochs from scratch, in less time.
    """
    if not profile.dataset.startswith("folder:") or profile.folder_start != "shipped" or (rotations, mode) != ("4", "all"):
        return None
    base = PROFILES["quick"].replace(num_blocks=profile.num_blocks, width=profile.width)
    spec = rotnet_spec(base, seed=0)
    if store.find(spec.stem) is None:
        raise FileNotFoundError(f"no shipped RotNet with {profile.num_blocks} blocks of width {profile.width} to "
                                f"fine-tune on {profile.dataset} (models/{spec.stem}.pt); use the quick profile's "
                                "architecture, run `make models`, or train from scratch (folder_start='scratch', "
                                "`--from-scratch`)")
    return spec


def train_rotnet_start(profile: Profile, epochs: int = 2, seed: int = 0, progress: bool = True,
                       precision: str | None = "auto", steps: int | None = None) -> NetworkInNetwork:
    """The first ``epochs`` epochs of the main RotNet's recipe (same seed, same schedule), trained now and not cached;
    with ``steps``, only its first ``steps`` gradient steps (e.g. 100: a run to watch in class).

    A run a student can watch: its training curve lies on the first epochs
    of the shipped model's recorded curve (identically on the CPU kind that
    made it, within the training noise on another). It is not the shipped
    model, so it is never stored as one. ``model.history`` is its history.

    ``precision``: ``"auto"`` (default) trains in bf16 where the machine has it natively (the shipped models' CPU
    kind: the same numbers) and in fp32 elsewhere, since emulated bf16 is slow: on a 2-core AMD EPYC without
    AVX-512 a quick-profile step took 1.8 s in bf16 and 0.15 s in fp32 (12x). ``None`` follows the profile's
    precision (the recipe exactly, bf16 for the quick profile).
    """
    if precision is not None:
        profile = profile.replace(precision=precision)
    spec = rotnet_spec(profile, seed=seed, progress=progress)
    model = spec.build()
    model.history = spec.train(model, None, stop_after=epochs, max_steps=steps)
    return model


def kept_snapshots(profile: Profile, seed: int | None = None) -> list[int]:
    """The epochs after which ``make models`` kept the main RotNet of ``seed`` (default: the first) on its way
    (Fig. 5(a)); none for a recipe that was never shipped (a changed setting makes another model)."""
    spec = rotnet_spec(profile, seed=profile.seeds[0] if seed is None else seed)
    return [e for e in store.snapshot_epochs(spec.config["train"]["epochs"]) if store.find_snapshot(spec.stem, e)]


def rotnet_snapshot(profile: Profile, epoch: int, seed: int | None = None) -> NetworkInNetwork:
    """The main RotNet of ``seed`` (default: the first) after ``epoch`` of its epochs, as kept by ``make models``
    (Fig. 5(a)); its last epoch is the shipped model itself."""
    seed = profile.seeds[0] if seed is None else seed
    spec = rotnet_spec(profile, seed=seed)
    epochs = spec.config["train"]["epochs"]
    if epoch == epochs:
        return spec.get()
    path = store.find_snapshot(spec.stem, epoch)
    if path is None:
        raise FileNotFoundError(f"no snapshot of the {profile.name} RotNet (seed {seed}) after epoch {epoch} "
                                f"({store.snapshot_path(spec.stem, epoch)}); `make models` keeps them after "
                                f"epochs {store.snapshot_epochs(epochs)} of the first seed's main RotNet")
    state = store.load_state(path)
    model = spec.build()
    load_weights(model, state, source=str(path))
    model.history = {}
    return model.eval()


def train_supervised(profile: Profile, per_class: int | None = None, seed: int = 0,
                     progress: bool = True) -> NetworkInNetwork:
    """The same architecture trained from scratch with labels (shipped or cached; see :func:`supervised_spec`)."""
    return supervised_spec(profile, per_class, seed, progress).get()


def supervised_spec(profile: Profile, per_class: int | None = None, seed: int = 0,
                    progress: bool = True) -> ModelSpec:
    """The same architecture trained from scratch with labels: Table 3's upper bound, Fig. 5's baseline."""
    data = labelled_subset(profile, per_class)
    epochs = epochs_for(len(data), profile.batch_size, profile.supervised_epochs, profile.min_steps)
    cfg = train_config(profile, epochs=epochs, batch_size=min(profile.batch_size, len(data)), lr=profile.lr,
                       milestones=profile.rotnet_milestones, seed=seed, precision=profile.precision)
    config = model_config(profile, "supervised", cfg, per_class=per_class, seed=seed,
                          augment=profile.supervised_augment)       # its own augmentation, not the RotNet's

    def build():
        return seeded_build(seed, lambda: build_network(profile, len(data.classes)))

    def train(model, ckpt):
        task = ClassificationTask(data.normalize, augment=profile.supervised_augment)
        return fit(model, data, task, cfg, ckpt, profile.device, deterministic=profile.deterministic,
                   desc=f"supervised[{per_class or 'all'}/class]", progress=progress)

    native = _native(profile, cfg, lambda p: supervised_spec(p, per_class, seed, progress))
    return ModelSpec(f"supervised-{profile.dataset}", config, build, train, native)


def random_init(profile: Profile, seed: int = 0, num_classes: int = 4) -> NetworkInNetwork:
    """An untrained network with the official initialisation: the random-features baseline."""
    model = seeded_build(seed, lambda: build_network(profile, num_classes)).eval()
    model.history = {}
    return model
