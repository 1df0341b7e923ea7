"""Profiles: ``quick`` (laptop CPU, Fashion-MNIST, minutes) and ``paper`` (the official CIFAR-10 setting, GPU).

Every notebook starts with ``profile = rotlib.get_profile()``; the
environment variables ROTLIB_PROFILE, ROTLIB_DATASET and ROTLIB_DEVICE
override the defaults without editing the notebook.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str
    num_blocks: int
    width: int
    n_train: int | None          # images used for training (None: the whole training split)
    n_test: int | None           # images used for testing (None: the whole test split)
    batch_size: int              # images per RotNet batch, before the K rotated copies
    rotnet_epochs: int
    classifier_epochs: int
    classifier_batch_size: int
    supervised_epochs: int
    min_steps: int               # a lower bound on gradient steps for small labelled subsets
    augment: bool                # random crop + flip (the official CIFAR-10 training augmentation)
    precompute_features: bool    # train classifiers on features computed once (only without augmentation)
    lr: float = 0.1
    rotnet_milestones: tuple[float, ...] = (0.3, 0.6, 0.8)      # 60/120/160 of 200 epochs
    classifier_milestones: tuple[float, ...] = (0.4, 0.8, 0.9)  # 20/40/45 of 50 epochs
    device: str = "auto"
    precision: str = "auto"

    def replace(self, **changes) -> "Profile":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "quick": Profile(name="quick", dataset="fashion-mnist", num_blocks=4, width=64, n_train=10_000, n_test=5_000,
                     batch_size=64, rotnet_epochs=3, classifier_epochs=15, classifier_batch_size=128,
                     supervised_epochs=6, min_steps=400, augment=False, precompute_features=True,
                     rotnet_milestones=(0.6, 0.85)),
    "paper": Profile(name="paper", dataset="cifar10", num_blocks=4, width=192, n_train=None, n_test=None,
                     batch_size=128, rotnet_epochs=200, classifier_epochs=50, classifier_batch_size=128,
                     supervised_epochs=200, min_steps=0, augment=True, precompute_features=False),
}


def get_profile(name: str | None = None, dataset: str | None = None, device: str | None = None, **changes) -> Profile:
    """A profile by name (default: $ROTLIB_PROFILE or ``quick``), with dataset/device from the arguments,
    else $ROTLIB_DATASET / $ROTLIB_DEVICE, else the profile's own."""
    name = name or os.environ.get("ROTLIB_PROFILE", "quick")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {list(PROFILES)} (or unset ROTLIB_PROFILE)")
    profile = PROFILES[name]
    dataset = dataset or os.environ.get("ROTLIB_DATASET")
    device = device or os.environ.get("ROTLIB_DEVICE")
    if dataset:
        changes["dataset"] = dataset
    if device:
        changes["device"] = device
    return profile.replace(**changes) if changes else profile
