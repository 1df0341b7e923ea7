"""The paper's experiments as cached functions of a profile.

Notebooks and the command line call these; each trained model and each
result is cached by its full configuration (see :mod:`rotlib.cache`), so
notebook 3 reuses the RotNet notebook 2 trained, and re-running a notebook
loads instead of retraining.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import torch

from . import data as D
from .cache import cached_json, cached_model, entry_stem
from .evaluate import accuracy, confusion_matrix, extract_features, per_class_accuracy, predict
from .models import NetworkInNetwork, Probe, feature_shape, make_classifier
from .profiles import Profile
from .rotations import canonical_rotation_set, rotate_batch, rotation_angles
from .train import ClassificationTask, RotationTask, TensorData, TrainConfig, fit, set_seed


_DATASETS: dict = {}  # the last 8 loaded splits, kept for the session; see clear_caches()


def clear_caches() -> None:
    """Forget the datasets and frozen features held in memory by this session.

    Frees their memory (the paper profile's frozen features alone take about
    900 MiB); they are loaded or computed again when next needed. The trained
    models and results on disk (:mod:`rotlib.cache`) are kept.
    """
    _DATASETS.clear()
    _FEATURES.clear()


def _load(dataset: str, split: str, n: int | None, root: str | None) -> D.ImageData:
    key = (dataset, split, n, root, str(D.fingerprint(dataset)))   # changed folder contents load anew
    if key not in _DATASETS:
        _DATASETS[key] = D.random_subset(D.load_dataset(dataset, split, root), n, seed=0)
        while len(_DATASETS) > 8:
            _DATASETS.pop(next(iter(_DATASETS)))
    return _DATASETS[key]


def load_split(profile: Profile, split: str = "train") -> D.ImageData:
    """The profile's training or test images (a fixed random subset of ``n_train``/``n_test`` images)."""
    n = profile.n_train if split == "train" else profile.n_test
    return _load(profile.dataset, split, n, os.environ.get("ROTLIB_DATA"))


def labelled_subset(profile: Profile, per_class: int | None) -> D.ImageData:
    """The first ``per_class`` training images of each class (the paper's semi-supervised split); None: all."""
    return D.first_per_class(load_split(profile, "train"), per_class)


def _epochs_for(n: int, batch_size: int, epochs: int, min_steps: int) -> int:
    steps_per_epoch = max(1, n // batch_size)
    return max(epochs, math.ceil(min_steps / steps_per_epoch))


def _data_config(profile: Profile) -> dict:
    fingerprint = D.fingerprint(profile.dataset)   # folder:PATH: its location and contents; None otherwise
    return {"dataset": profile.dataset, "n_train": profile.n_train, "augment": profile.augment,
            **({"data": fingerprint} if fingerprint else {})}


def block_names(profile: Profile) -> list[str]:
    return [f"conv{i + 1}" for i in range(profile.num_blocks)]


def build_network(profile: Profile, num_classes: int) -> NetworkInNetwork:
    channels = load_split(profile, "train").shape[0]
    return NetworkInNetwork(profile.num_blocks, profile.width, channels, num_classes)


# ---------------------------------------------------------------- networks
@dataclass(frozen=True)
class ModelSpec:
    """A trainable model's identity and recipe: ``name`` and ``config`` (its cache key), ``build()`` the untrained
    network, ``train(model, checkpoint)`` its training. :meth:`get` loads it (shipped or cached) or trains it."""
    name: str
    config: dict
    build: Callable
    train: Callable

    @property
    def stem(self) -> str:
        """The file name of its cache entry and of its shipped model (``models/<stem>.pt``)."""
        return entry_stem(self.name, self.config)

    def get(self) -> NetworkInNetwork:
        return cached_model(self.name, self.config, self.build, self.train)


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
    gradient steps and of rotated images per step, so only the pairing differs.

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
    if mode == "random":
        batch, n_epochs = b * k, epochs * k
    elif k == 4 or profile.rotation_budget == "epochs":
        batch, n_epochs = b, epochs
    else:
        if (4 * b) % k or (4 * epochs) % k:
            raise ValueError(f"rotation_budget='steps' with {k} rotations needs batch_size and epochs that make "
                             f"4*batch_size/{k} and 4*epochs/{k} whole numbers (got {b}, {epochs}); pick multiples "
                             f"of {k // math.gcd(k, 4)} or use rotation_budget='epochs'")
        batch, n_epochs = 4 * b // k, 4 * epochs // k
    cfg = TrainConfig(epochs=n_epochs, batch_size=batch, lr=profile.finetune_lr if start else profile.lr,
                      milestones=profile.rotnet_milestones, seed=seed, precision=profile.precision)
    config = {"kind": "rotnet", "rotations": rotations, "mode": mode, "seed": seed, "blocks": profile.num_blocks,
              "width": profile.width, **_data_config(profile), "train": cfg.__dict__,
              **({"start": start.stem} if start else {})}
    data = load_split(profile, "train")

    def build():
        set_seed(seed)
        net = build_network(profile, k)
        if start:                              # fine-tune: the shipped RotNet's weights, then this folder's epochs
            net.load_state_dict(start.get().state_dict())
        return net

    def train(model, ckpt, stop_after=None):
        task = RotationTask(data.normalize, rotations, mode, augment=profile.augment)
        return fit(model, data, task, cfg, ckpt, profile.device, deterministic=profile.deterministic, desc=f"RotNet[{rotations},{mode}]", progress=progress,
                   on_epoch_end=on_epoch_end, stop_after=stop_after)

    return ModelSpec(f"rotnet-{profile.dataset}", config, build, train)


def _start_from(profile: Profile, rotations: str, mode: str, seed: int) -> ModelSpec | None:
    """For ``folder:PATH`` (your own photos) with ``profile.folder_start == "shipped"``: the shipped cifar10-5k RotNet
    of the same architecture, which the folder's RotNet fine-tunes (4 rotations, all in one batch). None otherwise:
    train from scratch.

    Measured on a held-out folder of 4,400 natural photos (issue 19): fine-tuning a 32-epoch CIFAR RotNet for
    8 epochs at lr 0.02 gave a better RotNet and better features than 16 epochs from scratch, in less time.
    """
    if not profile.dataset.startswith("folder:") or profile.folder_start != "shipped" or (rotations, mode) != ("4", "all"):
        return None
    from . import shipped
    from .profiles import PROFILES
    base = PROFILES["quick"].replace(num_blocks=profile.num_blocks, width=profile.width, precision=profile.precision)
    spec = rotnet_spec(base, seed=0)
    if shipped.find(spec.stem) is None:
        raise FileNotFoundError(f"no shipped RotNet with {profile.num_blocks} blocks of width {profile.width} to "
                                f"fine-tune on {profile.dataset} (models/{spec.stem}.pt); use the quick profile's "
                                "architecture, run `make models`, or train from scratch (folder_start='scratch', "
                                "`--from-scratch`)")
    return spec


def train_rotnet_start(profile: Profile, epochs: int = 2, seed: int = 0, progress: bool = True) -> NetworkInNetwork:
    """The first ``epochs`` epochs of the main RotNet's recipe (same seed, same schedule), trained now and not cached.

    A run a student can watch: its training curve lies on the first epochs
    of the shipped model's recorded curve (identically on the CPU kind that
    made it, within the training noise on another). It is not the shipped
    model, so it is never stored as one. ``model.history`` is its history.
    """
    spec = rotnet_spec(profile, seed=seed, progress=progress)
    model = spec.build()
    model.history = spec.train(model, None, stop_after=epochs)
    return model


def rotnet_snapshot(profile: Profile, epoch: int, seed: int | None = None) -> NetworkInNetwork:
    """The main RotNet of ``seed`` (default: the first) after ``epoch`` of its epochs, as kept by ``make models``
    (Fig. 5(a)); its last epoch is the shipped model itself."""
    from . import shipped
    from .train import load_weights
    seed = profile.seeds[0] if seed is None else seed
    spec = rotnet_spec(profile, seed=seed)
    if epoch == spec.config["train"]["epochs"]:
        return spec.get()
    path = shipped.find_snapshot(profile, seed, epoch)
    if path is None:
        raise FileNotFoundError(f"no snapshot of the {profile.name} RotNet (seed {seed}) after epoch {epoch} "
                                f"({shipped.snapshot_path(profile, seed, epoch)}); `make models` keeps them after "
                                f"epochs {shipped.snapshot_epochs(profile)} of the first seed's main RotNet")
    state = shipped.load_state(path)
    model = spec.build()
    load_weights(model, state, source=str(path))
    model.history, model.cache_key = {}, f"{spec.stem}-at{epoch:02d}"
    return model.eval()


def train_supervised(profile: Profile, per_class: int | None = None, seed: int = 0,
                     progress: bool = True) -> NetworkInNetwork:
    """The same architecture trained from scratch with labels (shipped or cached; see :func:`supervised_spec`)."""
    return supervised_spec(profile, per_class, seed, progress).get()


def supervised_spec(profile: Profile, per_class: int | None = None, seed: int = 0,
                    progress: bool = True) -> ModelSpec:
    """The same architecture trained from scratch with labels: Table 3's upper bound, Fig. 5's baseline."""
    data = labelled_subset(profile, per_class)
    epochs = _epochs_for(len(data), profile.batch_size, profile.supervised_epochs, profile.min_steps)
    cfg = TrainConfig(epochs=epochs, batch_size=min(profile.batch_size, len(data)), lr=profile.lr,
                      milestones=profile.rotnet_milestones, seed=seed, precision=profile.precision)
    config = {"kind": "supervised", "per_class": per_class, "seed": seed, "blocks": profile.num_blocks,
              "width": profile.width, **_data_config(profile), "augment": profile.supervised_augment,
              "train": cfg.__dict__}

    def build():
        set_seed(seed)
        return build_network(profile, len(data.classes))

    def train(model, ckpt):
        task = ClassificationTask(data.normalize, augment=profile.supervised_augment)
        return fit(model, data, task, cfg, ckpt, profile.device, deterministic=profile.deterministic, desc=f"supervised[{per_class or 'all'}/class]",
                   progress=progress)

    return ModelSpec(f"supervised-{profile.dataset}", config, build, train)


def random_init(profile: Profile, seed: int = 0, num_classes: int = 4) -> NetworkInNetwork:
    """An untrained network with the official initialisation: the random-features baseline."""
    set_seed(seed)
    model = build_network(profile, num_classes).eval()
    model.cache_key = f"random-init-{profile.dataset}-w{profile.width}-b{profile.num_blocks}-s{seed}"
    model.history = {}
    return model


# ---------------------------------------------------------------- evaluation
def rotation_predictions(model: NetworkInNetwork, profile: Profile, rotations: str = "4"):
    """Logits, true rotation labels and source image of every test image in every rotation
    (:class:`rotlib.evaluate.Predictions`)."""
    test = load_split(profile, "test")
    return predict(model, test, RotationTask(test.normalize, rotations), device=profile.device,
                   precision=profile.evaluation_precision)


def rotation_accuracy(model: NetworkInNetwork, profile: Profile, rotations: str = "4") -> float:
    """Pretext accuracy (%) on the test split, every test image in every rotation (cached)."""
    def compute():
        p = rotation_predictions(model, profile, rotations)
        return 100.0 * (p.logits.argmax(1) == p.targets).float().mean().item()
    key = {"model": model.cache_key, "rotations": canonical_rotation_set(rotations), "n_test": profile.n_test,
           "precision": profile.evaluation_precision}
    return cached_json("rotacc", key, compute)


def rotation_confusion(model: NetworkInNetwork, profile: Profile, rotations: str = "4") -> torch.Tensor:
    p = rotation_predictions(model, profile, rotations)
    return confusion_matrix(p.logits, p.targets, len(rotation_angles(rotations)))


def rotation_accuracy_per_class(model: NetworkInNetwork, profile: Profile, rotations: str = "4") -> torch.Tensor:
    """Pretext accuracy (%) on the test images of each object class, every image in every rotation."""
    test = load_split(profile, "test")
    return per_class_accuracy(rotation_predictions(model, profile, rotations), test.labels, len(test.classes))


def _head_config(profile: Profile, n: int) -> TrainConfig:
    epochs = _epochs_for(n, profile.classifier_batch_size, profile.classifier_epochs, profile.min_steps)
    return TrainConfig(epochs=epochs, batch_size=min(profile.classifier_batch_size, n), lr=profile.lr,
                       milestones=profile.classifier_milestones, precision=profile.evaluation_precision)


_FEATURES: dict = {}  # the most recent frozen features (train and test), reused by consecutive probes; see clear_caches()


def _frozen_features(backbone: NetworkInNetwork, profile: Profile, data: D.ImageData, subset):
    """Features of ``data`` at every block, computed once for consecutive probes of the same backbone and subset.

    The frozen backbone is deterministic in eval mode, so the blocks of
    Table 1, or the test split of a label sweep, need not run it again. Only
    the last two extractions are kept in memory.
    """
    key = (backbone.cache_key, profile.dataset, str(D.fingerprint(profile.dataset)), profile.n_train, profile.n_test,
           profile.evaluation_precision, subset)
    if key not in _FEATURES:
        _FEATURES[key] = extract_features(backbone, data, data.normalize, backbone.block_names, device=profile.device,
                                          precision=profile.evaluation_precision)
        while len(_FEATURES) > 2:
            _FEATURES.pop(next(iter(_FEATURES)))
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
    key = {"backbone": backbone.cache_key, "block": block, "classifier": classifier, "per_class": per_class,
           "seed": seed, **_data_config(profile), "n_test": profile.n_test, "train": cfg.__dict__}

    def compute():
        set_seed(seed)
        if profile.precompute_features:
            train_f = _frozen_features(backbone, profile, train_data, ("train", per_class))[block]
            test_f = _frozen_features(backbone, profile, test, ("test",))[block]
            head = make_classifier(classifier, tuple(train_f.shape[1:]), len(train_data.classes), profile.width)
            fit(head, TensorData(train_f, train_data.labels), ClassificationTask(), cfg,
                device=profile.device, deterministic=profile.deterministic, desc=f"{classifier} on {block}", progress=progress)
            return accuracy(head, TensorData(test_f, test.labels), ClassificationTask(),
                            device=profile.device, precision=profile.evaluation_precision)
        shape = feature_shape(backbone, block, train_data.shape)   # on the backbone's own device
        model = Probe(backbone, block, make_classifier(classifier, tuple(shape), len(train_data.classes),
                                                       profile.width))
        fit(model, train_data, ClassificationTask(train_data.normalize, augment=profile.augment), cfg,
            device=profile.device, deterministic=profile.deterministic, desc=f"{classifier} on {block}", progress=progress)
        return accuracy(model, test, ClassificationTask(test.normalize), device=profile.device,
                        precision=profile.evaluation_precision)

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
    key = {"backbone": backbone.cache_key, "block": block, "classifier": classifier, "n_images": n_images,
           "seed": seed, **_data_config(profile), "n_test": profile.n_test, "train": cfg.__dict__}

    def compute():
        feats = {name: extract_features(backbone, d, d.normalize, [block], device=profile.device,
                                        precision=profile.evaluation_precision)[block] for name, d in (("train", train_data),
                                                                                             ("test", test))}
        set_seed(seed)
        head = make_classifier(classifier, tuple(feats["train"].shape[1:]), 4, profile.width)
        fit(head, TensorData(feats["train"], train_data.labels), ClassificationTask(), cfg, device=profile.device,
            deterministic=profile.deterministic, desc=f"rotation from {block}", progress=progress)
        return accuracy(head, TensorData(feats["test"], test.labels), ClassificationTask(), device=profile.device,
                        precision=profile.evaluation_precision)

    return cached_json("rotprobe", key, compute)


def supervised_accuracy(model: NetworkInNetwork, profile: Profile) -> float:
    """Test accuracy (%) of a network trained with labels, end to end (cached)."""
    test = load_split(profile, "test")
    return cached_json("supacc", {"model": model.cache_key, "n_test": profile.n_test,
                                  "precision": profile.evaluation_precision},
                       lambda: accuracy(model, test, ClassificationTask(test.normalize), device=profile.device,
                                        precision=profile.evaluation_precision))


def pixel_probe(profile: Profile, classifier: str = "nonlinear", per_class: int | None = None, seed: int = 0,
                progress: bool = False) -> float:
    """Test accuracy (%) of the classifier on raw normalised pixels: what needs no representation at all."""
    train_data, test = labelled_subset(profile, per_class), load_split(profile, "test")
    cfg = _head_config(profile, len(train_data))
    key = {"pixels": True, "classifier": classifier, "per_class": per_class, "seed": seed, **_data_config(profile),
           "n_test": profile.n_test, "train": cfg.__dict__}

    def compute():
        set_seed(seed)
        head = make_classifier(classifier, train_data.shape, len(train_data.classes))
        fit(head, train_data, ClassificationTask(train_data.normalize), cfg, device=profile.device,
            deterministic=profile.deterministic, desc=f"{classifier} on pixels", progress=progress)
        return accuracy(head, test, ClassificationTask(test.normalize), device=profile.device)

    return cached_json("pixels", key, compute)


# ---------------------------------------------------------------- sweeps (notebooks 6 and 7)
def rotation_ablation(profile: Profile, sets=("4", "8", "2-0/180", "2-90/270"), block: str = "conv2",
                      classifier: str = "nonlinear", per_class: int | None = None, probe_seeds=(0,),
                      rotnet_seeds=(0,), progress: bool = True) -> dict:
    """Table 2: a RotNet per rotation set (same images, same epochs), each probed by the same classifier.

    Returns {set: {"rotation_accuracy": [...], "accuracy": [...]}} with one
    entry per (RotNet seed, probe seed). Everything is cached.
    """
    out = {}
    for name in sets:
        accs, rot = [], []
        for rs in rotnet_seeds:
            model = train_rotnet(profile, name, seed=rs, progress=progress)
            rot.append(rotation_accuracy(model, profile, name))
            accs += [probe(model, profile, block, classifier, per_class, seed=ps) for ps in probe_seeds]
        out[canonical_rotation_set(name)] = {"rotation_accuracy": rot, "accuracy": accs}
    return out


def label_sweep(profile: Profile, per_class=(10, 20, 100, 400, None), block: str = "conv2",
                classifier: str = "conv", progress: bool = True) -> dict:
    """Fig. 5: accuracy vs labelled images per class, RotNet features + classifier vs supervised from scratch.

    The RotNet is trained once without labels on the profile's training
    images; for each k, the classifier on its frozen ``block`` features and a
    supervised network from scratch both see the same first k images per
    class. ``None`` means every labelled training image.
    """
    rotnet = train_rotnet(profile, progress=progress)
    result = {"per_class": [], "labels": [], "rotnet": [], "supervised": []}
    for k in per_class:
        result["per_class"].append(k)
        result["labels"].append(len(labelled_subset(profile, k)))
        result["rotnet"].append(probe(rotnet, profile, block, classifier, per_class=k))
        result["supervised"].append(supervised_accuracy(train_supervised(profile, k, progress=progress), profile))
    result["crossover_labels"] = crossover(result["labels"], result["rotnet"], result["supervised"])
    return result


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
