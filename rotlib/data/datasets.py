"""``load_dataset``: every dataset by name, with the environment's defaults read at call time."""
from __future__ import annotations

from pathlib import Path

from ..settings import current
from .cifar import load_cifar10, load_cifar10_5k
from .fashion_mnist import load_fashion_mnist
from .folders import load_folder
from .imagedata import ImageData

DATASETS = ("cifar10-5k", "fashion-mnist", "cifar10", "folder:PATH")


def load_dataset(name: str, split: str = "train", root=None, download: bool | None = None, size: int = 32,
                 max_pixels: int | None = None) -> ImageData:
    """Load a dataset by name: ``cifar10-5k``, ``fashion-mnist``, ``cifar10`` or ``folder:PATH``.

    ``root`` None: ``rotlib.settings.current().data`` (ROTLIB_DATA); ``download`` None: unless ROTLIB_OFFLINE=1.
    ``size`` and ``max_pixels`` are for ``folder:PATH`` (see :func:`~rotlib.data.folders.load_folder`).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    settings = current()
    root = Path(root or settings.data)
    if download is None:
        download = not settings.offline
    if name == "cifar10-5k":
        return load_cifar10_5k(split)
    if name == "fashion-mnist":
        return load_fashion_mnist(split, root, download)
    if name == "cifar10":
        return load_cifar10(split, root, download)
    if name.startswith("folder:"):
        return load_folder(name[len("folder:"):], split, size, max_pixels=max_pixels)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
