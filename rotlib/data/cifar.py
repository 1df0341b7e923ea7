"""CIFAR-10: the full dataset (python-format batches, else downloaded) and the shipped 5,000-image subset.

The batches are read by hand (a few lines): ``torchvision.datasets.CIFAR10`` reads the same files in the
same order with the same labels, but it checks each file's md5 on every load (seconds for 170 MB) and so
refuses CIFAR-format files written for tests; it is used to download them.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..distributed import on_main
from ..settings import current
from .imagedata import DatasetNotFoundError, ImageData

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Normalisation statistics: the official RotNet code's for CIFAR-10.
CIFAR10_MEAN, CIFAR10_STD = (125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)
CIFAR10_5K_SHA256 = {"train": "4c144d76a85ed98345e1060b39edd6b1cd69f3bc6299d42572bb3f3a56e782a7",
                     "test": "fc4475cb4e351bcea3a386204d966bf42e349094c1c27df42b32b66dff439a2e"}


def shipped_root() -> Path:
    """The folder of the shipped subset: ``<home>/data/cifar10-5k`` (``rotlib.settings``)."""
    return current().home / "data" / "cifar10-5k"


def _cifar_dir(root: Path, download: bool) -> Path:
    """The folder of the python-format batches, downloaded first where needed (under torchrun by rank 0 alone,
    while the others wait: all ranks at once would write the same files)."""
    return on_main(lambda: _find_cifar(root, download))


def _find_cifar(root: Path, download: bool) -> Path:
    d = root / "cifar-10-batches-py"
    if (d / "test_batch").exists() and (d / "data_batch_1").exists():
        return d
    if download:
        try:
            import torchvision
            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
            return d
        except Exception as err:
            reason = f" (download failed: {type(err).__name__}: {err})"
    else:
        reason = " (download disabled)"
    raise DatasetNotFoundError(
        f"CIFAR-10 not found in {d}" + reason + ". Fix one of: (1) connect to the internet and rerun "
        "(torchvision downloads it); or (2) download cifar-10-python.tar.gz from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html elsewhere and extract it into {root} "
        "(it creates cifar-10-batches-py/)."
    )


def load_cifar10(split: str = "train", root=None, download: bool = True) -> ImageData:
    """CIFAR-10, uint8 (N, 3, 32, 32); ``root`` None: ``rotlib.settings.current().data`` (ROTLIB_DATA)."""
    d = _cifar_dir(Path(root) if root is not None else current().data, download)
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in files:
        path = d / name
        if not path.exists():
            raise DatasetNotFoundError(f"CIFAR-10 file {path} is missing; re-extract cifar-10-python.tar.gz into {d.parent}")
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.extend(entry.get("labels", entry.get("fine_labels", [])))
    return ImageData(torch.from_numpy(np.concatenate(xs)), torch.tensor(ys, dtype=torch.long), list(CIFAR10_CLASSES),
                     CIFAR10_MEAN, CIFAR10_STD, "cifar10", {"split": split, "source": str(d)})


def cifar10_5k_indices(split: str = "train") -> np.ndarray:
    """torchvision ``CIFAR10`` indices of the shipped subset: the first 1,000 images of each official batch."""
    starts = range(0, 50_000, 10_000) if split == "train" else [0]
    return np.concatenate([np.arange(s, s + 1000) for s in starts])


def load_cifar10_5k(split: str = "train", root=None) -> ImageData:
    """The shipped CIFAR-10 subset: 5,000 training / 1,000 test images, uint8 (N, 3, 32, 32), offline.

    ``root`` None: :func:`shipped_root`."""
    path = Path(root if root is not None else shipped_root()) / f"{split}.npz"
    if not path.exists():
        raise DatasetNotFoundError(
            f"{path} is missing. It ships with the project: restore it with `git checkout -- data/cifar10-5k`, "
            "or rebuild it from the full CIFAR-10 with rotlib.data.cifar10_5k_indices(split). rotlib looks for the "
            "project in $ROTLIB_HOME, else in the checkout it is imported or run from: with rotlib installed "
            "elsewhere, run it from inside the checkout or set ROTLIB_HOME=/path/to/the/checkout.")
    with np.load(path) as f:
        images, labels = f["images"], f["labels"]
    if images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8 or len(images) != len(labels):
        raise ValueError(f"{path} is not the shipped file (images {images.dtype} {images.shape}); restore it with "
                         "`git checkout -- data/cifar10-5k`")
    return ImageData(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels).long(),
                     list(CIFAR10_CLASSES), CIFAR10_MEAN, CIFAR10_STD, "cifar10-5k", {"split": split, "source": str(path)})
