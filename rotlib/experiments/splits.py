"""The profile's images: its training and test splits, and the labelled subsets of the few-label experiments."""
from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

from .. import data as D
from ..models import NetworkInNetwork
from ..profiles import Profile
from ..settings import current

_LOADED: OrderedDict = OrderedDict()   # the last 8 decoded splits; callers only ever get copies (see load_split)


def clear_loaded() -> None:
    """Forget the decoded splits this session keeps in memory (see :func:`rotlib.experiments.clear_caches`)."""
    _LOADED.clear()


def _copy(data: D.ImageData) -> D.ImageData:
    return dataclasses.replace(data, images=data.images.clone(), labels=data.labels.clone(),
                               classes=list(data.classes))


def load_split(profile: Profile, split: str = "train") -> D.ImageData:
    """The profile's training or test images (a fixed random subset of ``n_train``/``n_test`` images).

    Decoding is done once per session (a folder of photos takes a while); each call returns its own copy, so a
    caller that edits ``images`` or ``labels`` changes nothing for anyone else.
    """
    n = profile.n_train if split == "train" else profile.n_test
    key = (profile.dataset, split, n, str(current().data), str(D.fingerprint(profile.dataset)))  # new contents: anew
    if key not in _LOADED:
        _LOADED[key] = D.random_subset(D.load_dataset(profile.dataset, split), n, seed=0)
        while len(_LOADED) > 8:
            _LOADED.popitem(last=False)
    return _copy(_LOADED[key])


def labelled_subset(profile: Profile, per_class: int | None) -> D.ImageData:
    """The first ``per_class`` training images of each class (the paper's semi-supervised split); None: all."""
    return D.first_per_class(load_split(profile, "train"), per_class)


def epochs_for(n: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """``epochs``, or more where ``n`` images in batches of ``batch_size`` would give fewer than ``min_steps`` steps."""
    steps_per_epoch = max(1, n // batch_size)
    return max(epochs, math.ceil(min_steps / steps_per_epoch))


def data_fields(profile: Profile) -> dict:
    """The key fields of the training images: the dataset, how many, whether augmented (and for ``folder:PATH`` its
    location and contents)."""
    fingerprint = D.fingerprint(profile.dataset)
    return {"dataset": profile.dataset, "n_train": profile.n_train, "augment": profile.augment,
            **({"data": fingerprint} if fingerprint else {})}


def block_names(profile: Profile) -> list[str]:
    return [f"conv{i + 1}" for i in range(profile.num_blocks)]


def build_network(profile: Profile, num_classes: int) -> NetworkInNetwork:
    channels = load_split(profile, "train").shape[0]
    return NetworkInNetwork(profile.num_blocks, profile.width, channels, num_classes)
