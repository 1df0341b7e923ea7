"""Profiles: ``quick`` (laptop CPU, 5,000 real CIFAR-10 images, minutes) and ``paper`` (the official CIFAR-10 setting, GPU).

Every notebook starts with ``profile = rotlib.get_profile()``; the
environment variables ROTLIB_PROFILE, ROTLIB_DATASET and ROTLIB_DEVICE
override the defaults without editing the notebook.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

from .settings import current
from .checks import PRECISIONS, fractions, optional_whole_number, positive_number, whole_number


MODES = {"all": "all", "random": "random", "random-images": "random"}   # a RotNet's batching -> its task's mode


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
    augment: bool                # RotNet training: random crop + flip (the official CIFAR-10 training augmentation)
    precompute_features: bool    # train classifiers on features computed once (so their images are not augmented)
    lr: float = 0.1
    rotnet_milestones: tuple[float, ...] = (0.3, 0.6, 0.8)      # 60/120/160 of 200 epochs
    classifier_milestones: tuple[float, ...] = (0.4, 0.8, 0.9)  # 20/40/45 of 50 epochs
    supervised_augment: bool = True  # the supervised baseline: random crop + flip (a strong, fair baseline)
    seeds: tuple[int, ...] = (0, 1)  # one RotNet (and baseline) per seed for every reported number
    rotation_budget: str = "steps"   # Table 2: "steps" (equal compute per rotation set) or "epochs" (the paper's)
    ablation_epochs: int | None = None           # RotNet epochs of the ablations (Table 2, one random rotation per
                                                 # image) and of their own 4-rotation reference; None: rotnet_epochs
    ablation_seeds: tuple[int, ...] | None = None  # seeds of the ablations; None: seeds
    batching: tuple[str, ...] = ("all", "random")  # notebook 2's batching variants, at the ablations' budget: "all"
                                     # (each image in its K rotations, the reference), "random" (one random rotation
                                     # per image, K x the images per batch and K x the epochs: equal compute),
                                     # "random-images" (one random rotation per image, the same images per batch and
                                     # epochs: the comparison as the paper words it, Sec. 2.2)
    folder_start: str = "shipped"    # folder:PATH RotNets: "shipped" (fine-tune the shipped cifar10-5k RotNet of the
                                     # same architecture) or "scratch" (train from a random init)
    finetune_epochs: int = 8         # fine-tuning the shipped RotNet on a folder of photos
    finetune_lr: float = 0.02
    device: str = "auto"
    precision: str = "auto"          # training: "auto" (bf16 where the CPU/GPU has it natively, else fp16 with loss
                                     # scaling on a GPU with tensor cores, else fp32), "bf16", "fp16" or "fp32"
    deterministic: bool = False      # CUDA: deterministic cuDNN kernels (the same run twice gives the same weights on
                                     # one GPU) instead of the fastest ones (cudnn.benchmark); no effect on the CPU
    eval_precision: str | None = None  # features, probes and accuracies; None: precision. Changing it does not
                                       # change which models are loaded (their keys hold the training precision)

    def __post_init__(self):
        """Check the settings here, so a bad value fails at once with its valid range, not deep in training."""
        whole_number(self.num_blocks, "num_blocks", 3, " (the paper uses 3, 4 or 5)")
        whole_number(self.width, "width", 2, " (192 in the paper)")
        optional_whole_number(self.n_train, "n_train (training images)")
        optional_whole_number(self.n_test, "n_test (test images)")
        for name in ("batch_size", "classifier_batch_size", "rotnet_epochs", "classifier_epochs", "supervised_epochs"):
            whole_number(getattr(self, name), name, 1, ": an untrained model would be cached as if trained"
                         if name.endswith("epochs") else "")
        whole_number(self.min_steps, "min_steps", 0)
        if self.ablation_epochs is not None:
            whole_number(self.ablation_epochs, "ablation_epochs", 1, ": an untrained model would be cached as if trained")
        if not self.seeds or (self.ablation_seeds is not None and not self.ablation_seeds):
            raise ValueError("seeds and ablation_seeds need at least one seed each")
        if not self.batching or self.batching[0] != "all" or len(set(self.batching)) != len(self.batching) \
                or not set(self.batching) <= set(MODES):
            raise ValueError(f"batching must start with 'all' (the reference) and name each of {list(MODES)} at most "
                             f"once, got {self.batching!r}")
        positive_number(self.lr, "lr (learning rate)")
        positive_number(self.finetune_lr, "finetune_lr (learning rate of fine-tuning)")
        whole_number(self.finetune_epochs, "finetune_epochs", 1, ": an untrained model would be cached as if trained")
        if self.folder_start not in ("shipped", "scratch"):
            raise ValueError(f"folder_start must be 'shipped' or 'scratch', got {self.folder_start!r}")
        fractions(self.rotnet_milestones, "rotnet_milestones")
        fractions(self.classifier_milestones, "classifier_milestones")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.eval_precision not in (None, *PRECISIONS):
            raise ValueError(f"eval_precision must be None or one of {PRECISIONS}, got {self.eval_precision!r}")

    @property
    def ablation(self) -> dict:
        """The ablations' budget: ``{"epochs": ..., "seeds": ...}`` (the main model's where not set)."""
        return {"epochs": self.ablation_epochs or self.rotnet_epochs, "seeds": self.ablation_seeds or self.seeds}

    @property
    def evaluation_precision(self) -> str:
        """The precision of features, probes and accuracies (``eval_precision``, else ``precision``)."""
        return self.eval_precision or self.precision

    def replace(self, **changes) -> "Profile":
        return replace(self, **changes)

    def with_settings(self, settings) -> "Profile":
        """The profile with ``FIELD=VALUE`` settings applied (the command line's ``--set``): every field can be set.
        VALUE is read as JSON where it parses (``32``, ``0.05``, ``true``, ``null``, ``[0, 1]``), else as text."""
        names = {f.name for f in fields(self)}
        changes = {}
        for item in settings:
            field_name, sep, text = item.partition("=")
            if not sep or field_name not in names:
                raise ValueError(f"--set wants FIELD=VALUE with FIELD one of {sorted(names)}; got {item!r}")
            try:
                value = json.loads(text)
            except ValueError:
                value = text
            changes[field_name] = tuple(value) if isinstance(value, list) else value
        return self.replace(**changes)

    def as_dict(self) -> dict:
        return asdict(self)


# The shipped models' recipe (issue 19; docs/models.md, "How the shipped models were made"), measured on a 2-core CPU:
# width 64, batches of 16 images x 4 rotations, 32 epochs with random crop + flip for the main RotNet (seed 0 on
# an Intel Xeon: rotation 74.8%, conv2 probe 62.3%, vs 64.7% and 53.7% after 4 epochs without augmentation),
# three seeds. The ablations (Table 2, one random rotation per image) and their own 4-rotation reference at
# 4 epochs, three seeds: 15 of them at 32 epochs would take about 5 hours of a 2-core CPU.
# Its device and training precision are pinned to what made the shipped models (the CPU, bf16), so every machine
# asks for the models that are shipped (a key holds the device kind and the resolved precision, rotlib.identity):
# ROTLIB_DEVICE=cuda trains its own on a GPU. Evaluations use "auto": bf16 where the CPU has it natively (the Intel
# Xeon with AMX, the AMD EPYC with AVX-512 BF16), fp32 on a CPU without it (the AMD EPYC without AVX-512).
_QUICK = Profile(name="quick", dataset="cifar10-5k", num_blocks=4, width=64, n_train=None, n_test=None,
                 batch_size=16, rotnet_epochs=32, classifier_epochs=15, classifier_batch_size=128,
                 supervised_epochs=12, min_steps=400, augment=True, precompute_features=True,
                 rotnet_milestones=(0.6, 0.85), seeds=(0, 1, 2), ablation_epochs=4,
                 device="cpu", precision="bf16", eval_precision="auto")

PROFILES = {
    "quick": _QUICK,
    # The quick profile with every evaluation (features, probes, accuracies) in fp32 instead of bf16: the same shipped
    # models, other kernels: one more run for results/evidence/quick/ (docs/every-cpu-kind.md), from which CI's
    # tolerances and the verdicts' margins are derived; its results go to results/quick-fp32eval.json.
    "quick-fp32eval": _QUICK.replace(name="quick-fp32eval", eval_precision="fp32"),
    # Issue 32's recipe for the ablations, trained for the quick profile's shipped models: Table 2 and the batching
    # comparison at the main RotNet's budget (32 epochs, its 3 seeds, so the 4-rotation reference is the main RotNet
    # itself), every rotation set for the same epochs (the paper's protocol), and both batching variants. Its 15
    # new RotNets take about 3.4 hours on a CPU with native bf16 (49 to 63 where bf16 is emulated), more than one
    # session: `make models PROFILE=quick-ablations32` trains what is missing, and each is shipped (and committed) as
    # it finishes; models/ holds this plan beside quick's (rotlib.shipped.SHIPPED_PLANS). When all are shipped,
    # the quick profile takes these settings, notebooks 2 and 6 are rebuilt on them, and this entry goes.
    "quick-ablations32": _QUICK.replace(name="quick-ablations32", ablation_epochs=None, rotation_budget="epochs",
                                        batching=("all", "random", "random-images")),
    "paper": Profile(name="paper", dataset="cifar10", num_blocks=4, width=192, n_train=None, n_test=None,
                     batch_size=128, rotnet_epochs=200, classifier_epochs=50, classifier_batch_size=128,
                     supervised_epochs=200, min_steps=0, augment=True, precompute_features=False, seeds=(0,),
                     rotation_budget="epochs"),
}


def get_profile(name: str | None = None, dataset: str | None = None, device: str | None = None, **changes) -> Profile:
    """A profile by name (default: $ROTLIB_PROFILE or ``quick``), with dataset/device from the arguments,
    else $ROTLIB_DATASET / $ROTLIB_DEVICE, else the profile's own."""
    env = current()
    name = name or env.profile or "quick"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {list(PROFILES)} (or unset ROTLIB_PROFILE)")
    profile = PROFILES[name]
    dataset = dataset or env.dataset
    device = device or env.device
    if dataset:
        changes["dataset"] = dataset
    if device:
        changes["device"] = device
    return profile.replace(**changes) if changes else profile
