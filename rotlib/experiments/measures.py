"""What the paper measures on a network, each result cached by a key derived in one place (:func:`result_key`).

A result's key names the network by the digest of its weights
(:func:`rotlib.identity.digest`), the measurement and its settings, the
data, and the device kind and resolved precision of the evaluation.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch

from .. import data as D
from ..cache import cached_json
from ..evaluate import accuracy, confusion_matrix, extract_features, per_class_accuracy, predict
from ..identity import RESULT_FORMAT, digest, run_fields
from ..models import NetworkInNetwork, Probe, feature_shape, make_classifier
from ..profiles import Profile
from ..rotations import canonical_rotation_set, rotate_batch, rotation_angles
from ..train import ClassificationTask, RotationTask, TensorData, TrainConfig, fit
from .recipes import seeded_build
from .splits import data_fields, epochs_for, labelled_subset, load_split

_FEATURES: OrderedDict = OrderedDict()  # the last two frozen-feature extractions, reused by consecutive probes


def clear_features() -> None:
    """Forget the frozen features this session keeps in memory (see :func:`rotlib.experiments.clear_caches`)."""
    _FEATURES.clear()


def result_key(profile: Profile, **fields) -> dict:
    """A measured result's key: ``fields`` (the measurement, the network's digest, its settings), then the data and
    where and how it is computed."""
    return {**fields, **data_fields(profile), "n_test": profile.n_test,
            **run_fields(profile.device, profile.evaluation_precision), "format": RESULT_FORMAT}


def _eval(profile: Profile) -> dict:
    return {"device": profile.device, "precision": profile.evaluation_precision}


# ---------------------------------------------------------------- the pretext task
def rotation_predictions(model: NetworkInNetwork, profile: Profile, rotations: str = "4"):
    """Logits, true rotation labels and source image of every test image in every rotation
    (:class:`rotlib.evaluate.Predictions`)."""
    test = load_split(profile, "test")
    return predict(model, test, RotationTask(test.normalize, rotations), **_eval(profile))


def rotation_accuracy(model: NetworkInNetwork, profile: Profile, rotations: str = "4") -> float:
    """Pretext accuracy (%) on the test split, every test image in every rotation (cached)."""
    def compute():
        p = rotation_predictions(model, profile, rotations)
        return 100.0 * (p.logits.argmax(1) == p.targets).float().mean().item()
    return cached_json("rotacc", result_key(profile, model=digest(model),
                                            rotations=canonical_rotation_set(rotations)), compute)


def rotation_confusion(model: NetworkInNetwork, profile: Profile, rotations: str = "4") -> torch.Tensor:
    p = rotation_predictions(model, profile, rotations)
    return confusion_matrix(p.logits, p.targets, len(rotation_angles(rotations)))


def rotation_accuracy_per_class(model: NetworkInNetwork, profile: Profile, rotations: str = "4") -> torch.Tensor:
    """Pretext accuracy (%) on the test images of each object class, every image in every rotation."""
    test = load_split(profile, "test")
    return per_class_accuracy(rotation_predictions(model, profile, rotations), test.labels, len(test.classes))


# ---------------------------------------------------------------- classifiers on frozen features
def _head_config(profile: Profile, n: int) -> TrainConfig:
    epochs = epochs_for(n, profile.classifier_batch_size, profile.classifier_epochs, profile.min_steps)
    return TrainConfig(epochs=epochs, batch_size=min(profile.classifier_batch_size, n), lr=profile.lr,
                       milestones=profile.classifier_milestones,
                       precision=run_fields(profile.device, profile.evaluation_precision)["precision"])


def block_features(backbone: NetworkInNetwork, profile: Profile, per_class: int | None = None) -> tuple[dict, dict]:
    """Every block's frozen features of the labelled training subset (``per_class`` images per class, None: all) and
    of the test split, as :func:`probe` trains and tests on them: ``({block: train}, {block: test})``."""
    train_data, test = labelled_subset(profile, per_class), load_split(profile, "test")
    return (_frozen_features(backbone, profile, train_data, ("train", per_class)),
            _frozen_features(backbone, profile, test, ("test",)))


def head_accuracy(train_f: torch.Tensor, train_labels: torch.Tensor, test_f: torch.Tensor, test_labels: torch.Tensor,
                  profile: Profile, classifier: str, num_classes: int, seed: int = 0, desc: str = "head",
                  progress: bool = False) -> float:
    """Test accuracy (%) of a classifier head trained on frozen features: the profile's probe protocol
    (:func:`_head_config`: epochs, batch, SGD, schedule, precision), its weights initialised from ``seed``. Not
    cached: :func:`probe` caches it; the live probe widget calls it directly."""
    cfg = _head_config(profile, len(train_f))
    head = seeded_build(seed, lambda: make_classifier(classifier, tuple(train_f.shape[1:]), num_classes, profile.width))
    fit(head, TensorData(train_f, train_labels), ClassificationTask(), cfg, device=profile.device,
        deterministic=profile.deterministic, desc=desc, progress=progress)
    return accuracy(head, TensorData(test_f, test_labels), ClassificationTask(), **_eval(profile))


def _frozen_features(backbone: NetworkInNetwork, profile: Profile, data: D.ImageData, subset) -> dict:
    """Features of ``data`` at every block, computed once for consecutive probes of the same backbone and subset.

    The frozen backbone is deterministic in eval mode, so the blocks of
    Table 1, or the test split of a label sweep, need not run it again. Only
    the last two extractions are kept in memory, and only used here.
    """
    key = (digest(backbone), profile.dataset, str(D.fingerprint(profile.dataset)), profile.n_train, profile.n_test,
           str(run_fields(profile.device, profile.evaluation_precision)), subset)
    if key not in _FEATURES:
        _FEATURES[key] = extract_features(backbone, data, data.normalize, backbone.block_names, **_eval(profile))
        while len(_FEATURES) > 2:
            _FEATURES.popitem(last=False)
    return _FEATURES[key]


def probe_blocks(backbone: NetworkInNetwork, profile: Profile, blocks: list[str] | None = None,
                 classifier: str = "nonlinear", per_class: int | None = None, seed: int = 0,
                 progress: bool = False) -> dict[str, float]:
    """Test accuracy (%) of a classifier trained on each block's frozen features (Tables 1 and 3, Fig. 5).

    Each block is one :func:`probe`, cached on its own: Table 1's conv2, Table 2's
    "4 rotations" and Table 3's "RotNet + non-linear" are the same computation.
    """
    return {block: probe(backbone, profile, block, classifier, per_class, seed, progress)
            for block in (blocks or backbone.block_names)}


def probe(backbone: NetworkInNetwork, profile: Profile, block: str = "conv2", classifier: str = "nonlinear",
          per_class: int | None = None, seed: int = 0, progress: bool = False) -> float:
    """Test accuracy (%) of a classifier trained on one block's frozen features (cached).

    The backbone is never updated. With ``profile.precompute_features`` the
    features are computed once and the classifier trains on them; otherwise
    (augmented training, the paper profile) they are computed per batch.
    """
    train_data, test = labelled_subset(profile, per_class), load_split(profile, "test")
    cfg = _head_config(profile, len(train_data))
    key = result_key(profile, backbone=digest(backbone), block=block, classifier=classifier, per_class=per_class,
                     seed=seed, train=cfg.__dict__)
    fit_options = dict(device=profile.device, deterministic=profile.deterministic, desc=f"{classifier} on {block}",
                       progress=progress)

    def compute():
        if profile.precompute_features:
            train_f, test_f = (f[block] for f in block_features(backbone, profile, per_class))
            return head_accuracy(train_f, train_data.labels, test_f, test.labels, profile, classifier,
                                 len(train_data.classes), seed, fit_options["desc"], progress)
        shape = feature_shape(backbone, block, train_data.shape)   # on the backbone's own device
        model = Probe(backbone, block, seeded_build(seed, lambda: make_classifier(
            classifier, tuple(shape), len(train_data.classes), profile.width)))
        fit(model, train_data, ClassificationTask(train_data.normalize, augment=profile.augment), cfg, **fit_options)
        return accuracy(model, test, ClassificationTask(test.normalize), **_eval(profile))

    return cached_json("probe", key, compute)


def rotation_probe(backbone: NetworkInNetwork, profile: Profile, block: str = "conv2", classifier: str = "linear",
                   n_images: int = 1000, seed: int = 0, progress: bool = False) -> float:
    """Test accuracy (%) of a classifier that predicts an image's rotation from one block's frozen features (cached).

    The paper explains Table 1's collapse at the last block by its specialising
    in the pretext task (Sec. 3.1); this measures how much of the rotation each
    block makes readable. ``n_images`` training and test images, each in its 4 rotations.
    """
    def rotated(split: str) -> D.ImageData:
        data = D.random_subset(load_split(profile, split), n_images, seed=0)
        images, turns = rotate_batch(data.images, "4")
        return D.ImageData(images, turns, ["0°", "90°", "180°", "270°"], data.mean, data.std, data.name)

    train_data, test = rotated("train"), rotated("test")
    cfg = _head_config(profile, len(train_data))
    key = result_key(profile, backbone=digest(backbone), block=block, classifier=classifier, n_images=n_images,
                     seed=seed, train=cfg.__dict__)

    def compute():
        feats = {name: extract_features(backbone, d, d.normalize, [block], **_eval(profile))[block]
                 for name, d in (("train", train_data), ("test", test))}
        head = seeded_build(seed, lambda: make_classifier(classifier, tuple(feats["train"].shape[1:]), 4,
                                                          profile.width))
        fit(head, TensorData(feats["train"], train_data.labels), ClassificationTask(), cfg, device=profile.device,
            deterministic=profile.deterministic, desc=f"rotation from {block}", progress=progress)
        return accuracy(head, TensorData(feats["test"], test.labels), ClassificationTask(), **_eval(profile))

    return cached_json("rotprobe", key, compute)


def supervised_accuracy(model: NetworkInNetwork, profile: Profile) -> float:
    """Test accuracy (%) of a network trained with labels, end to end (cached)."""
    test = load_split(profile, "test")
    return cached_json("supacc", result_key(profile, model=digest(model)),
                       lambda: accuracy(model, test, ClassificationTask(test.normalize), **_eval(profile)))


def pixel_probe(profile: Profile, classifier: str = "nonlinear", per_class: int | None = None, seed: int = 0,
                progress: bool = False) -> float:
    """Test accuracy (%) of the classifier on raw normalised pixels: what needs no representation at all."""
    train_data, test = labelled_subset(profile, per_class), load_split(profile, "test")
    cfg = _head_config(profile, len(train_data))
    key = result_key(profile, pixels=True, classifier=classifier, per_class=per_class, seed=seed, train=cfg.__dict__)

    def compute():
        head = seeded_build(seed, lambda: make_classifier(classifier, train_data.shape, len(train_data.classes)))
        fit(head, train_data, ClassificationTask(train_data.normalize), cfg, device=profile.device,
            deterministic=profile.deterministic, desc=f"{classifier} on pixels", progress=progress)
        return accuracy(head, test, ClassificationTask(test.normalize), **_eval(profile))

    return cached_json("pixels", key, compute)


def crossover(xs, a, b) -> float | None:
    """The x (interpolated on a log axis) where curve ``b`` first reaches curve ``a``; None if it never does."""
    d = [bi - ai for ai, bi in zip(a, b)]
    if d[0] >= 0:
        return float(xs[0])
    for i in range(1, len(xs)):
        if d[i] >= 0:
            t = -d[i - 1] / (d[i] - d[i - 1])
            return float(math.exp(math.log(xs[i - 1]) + t * (math.log(xs[i]) - math.log(xs[i - 1]))))
    return None
