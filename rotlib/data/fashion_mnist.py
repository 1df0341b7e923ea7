"""Fashion-MNIST: the four original .gz files, from Debian's ``dataset-fashion-mnist`` or ``<root>``, else downloaded.

The .gz IDX files are read by hand (a few lines): ``torchvision.datasets.FashionMNIST`` reads only the
unpacked files of its own ``<root>/FashionMNIST/raw`` layout, so it cannot read the Debian package's .gz
files in /usr/share/datasets without writing an unpacked copy; it is used to download them.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..distributed import on_main
from ..settings import current
from .imagedata import DatasetNotFoundError, ImageData

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)       # the usual normalisation statistics
_FMNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_mnist_dir(root: Path, download: bool) -> Path:
    """The folder of the four .gz files, downloaded first where needed (under torchrun by rank 0 alone)."""
    return on_main(lambda: _find_fashion_mnist(root, download))


def _find_fashion_mnist(root: Path, download: bool) -> Path:
    candidates = [root / "fashion-mnist", SYSTEM_FASHION_MNIST, root / "FashionMNIST" / "raw"]
    for d in candidates:
        if all((d / f).exists() for pair in _FMNIST_FILES.values() for f in pair):
            return d
    if download:
        try:
            import torchvision
            torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
            torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
            return root / "FashionMNIST" / "raw"
        except Exception as err:  # offline, proxy, ...
            reason = f" (download failed: {type(err).__name__}: {err})"
    else:
        reason = " (download disabled)"
    raise DatasetNotFoundError(
        "Fashion-MNIST not found" + reason + ". Fix one of: (1) on Debian/Ubuntu run "
        "`sudo apt-get install dataset-fashion-mnist` (puts the files in /usr/share/datasets/fashion-mnist); "
        f"(2) connect to the internet and rerun (torchvision downloads to {root}); or (3) copy the four "
        f"original .gz files into {root / 'fashion-mnist'}."
    )


def load_fashion_mnist(split: str = "train", root=None, download: bool = True) -> ImageData:
    """Fashion-MNIST, uint8 (N, 1, 28, 28); ``root`` None: ``rotlib.settings.current().data`` (ROTLIB_DATA)."""
    d = _fashion_mnist_dir(Path(root) if root is not None else current().data, download)
    img_file, lbl_file = _FMNIST_FILES[split]
    images = torch.from_numpy(_read_idx(d / img_file).copy()).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(d / lbl_file).astype(np.int64))
    return ImageData(images, labels, list(FASHION_MNIST_CLASSES), FASHION_MNIST_MEAN, FASHION_MNIST_STD,
                     "fashion-mnist", {"split": split, "source": str(d)})
