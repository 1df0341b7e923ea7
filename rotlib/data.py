"""Datasets held in memory as uint8 tensors, batched, normalised and augmented per batch.

Sources, offline first:
- ``cifar10-5k`` (the quick profile's default): 5,000 training and 1,000 test
  images of real CIFAR-10 shipped with the project in ``data/cifar10-5k/``
  (the first 1,000 images of each official batch; see data/README.md).
- ``fashion-mnist``: the four original .gz files from Debian's package
  ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist) or from
  ``<root>/fashion-mnist``; otherwise torchvision downloads them.
- ``cifar10``: the python-format batches in ``<root>/cifar-10-batches-py``;
  otherwise torchvision downloads them.
- ``folder:PATH``: your own images, one subfolder per class (or flat), with
  ``train/`` and ``test/`` subfolders when present; centre-cropped to a
  square (a 90-degree turn of a non-square image changes its shape).

Images stay uint8 (N, C, H, W) until a batch is drawn; normalisation,
augmentation and rotation then run on the whole batch at once, on the
training device (no per-sample PIL work, so loading never starves the model).
"""
from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data"
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("cifar10-5k", "fashion-mnist", "cifar10", "folder:PATH")

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Normalisation statistics: the official RotNet code's for CIFAR-10; the usual ones for Fashion-MNIST.
CIFAR10_MEAN, CIFAR10_STD = (125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says how to get it."""


@dataclass
class ImageData:
    """Images as a uint8 tensor (N, C, H, W), integer labels and the normalisation to apply."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, indices) -> "ImageData":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageData(self.images[idx], self.labels[idx], self.classes, self.mean, self.std, self.name, dict(self.meta))

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> float batch, scaled to [0, 1] and standardised per channel."""
        mean = torch.tensor(self.mean, device=images_uint8.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images_uint8.device).view(1, -1, 1, 1)
        return (images_uint8.float() / 255.0 - mean) / std


def first_per_class(data: ImageData, k: int | None) -> ImageData:
    """The first k images of each class, in dataset order (the paper's semi-supervised split)."""
    if k is None:
        return data
    picked = [torch.nonzero(data.labels == c).flatten()[:k] for c in range(len(data.classes))]
    return data.subset(torch.sort(torch.cat(picked)).values)


def stratified_subset(data: ImageData, per_class: int | None, seed: int = 0) -> ImageData:
    """``per_class`` random images of each class, reproducible by seed (None: all images)."""
    if per_class is None:
        return data
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(len(data.classes)):
        idx = torch.nonzero(data.labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {data.classes[c]!r} has only {len(idx)} images, {per_class} requested")
        picked.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return data.subset(torch.sort(torch.cat(picked)).values)


def random_subset(data: ImageData, n: int | None, seed: int = 0) -> ImageData:
    """n images drawn at random (reproducible by seed); None or n >= len: all images."""
    if n is None or n >= len(data):
        return data
    g = torch.Generator().manual_seed(seed)
    return data.subset(torch.sort(torch.randperm(len(data), generator=g)[:n]).values)


def batches(data: ImageData, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
            drop_last: bool = False):
    """Yield (uint8 images, labels) batches; shuffled by ``generator`` when asked."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield data.images[idx], data.labels[idx]


def augment(images: torch.Tensor, padding: int = 4, flip: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, for a whole batch at once.

    The official CIFAR-10 training augmentation (RandomCrop(32, padding=4) +
    RandomHorizontalFlip), vectorised over the batch with index arithmetic.
    """
    n, c, h, w = images.shape
    dev = images.device
    if padding:
        padded = torch.nn.functional.pad(images, (padding,) * 4)
        oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
        ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
        rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]
        images = padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                        rows, cols]
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(dev)
        images = torch.where(mask[:, None, None, None], images.flip(-1), images)
    return images


# ---------------------------------------------------------------- Fashion-MNIST
_FMNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_mnist_dir(root: Path, download: bool) -> Path:
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


def load_fashion_mnist(split: str = "train", root: Path = DEFAULT_ROOT, download: bool = True) -> ImageData:
    d = _fashion_mnist_dir(Path(root), download)
    img_file, lbl_file = _FMNIST_FILES[split]
    images = torch.from_numpy(_read_idx(d / img_file).copy()).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(d / lbl_file).astype(np.int64))
    return ImageData(images, labels, list(FASHION_MNIST_CLASSES), FASHION_MNIST_MEAN, FASHION_MNIST_STD,
                     "fashion-mnist", {"split": split, "source": str(d)})


# ---------------------------------------------------------------- CIFAR-10
def _cifar_dir(root: Path, download: bool) -> Path:
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


def load_cifar10(split: str = "train", root: Path = DEFAULT_ROOT, download: bool = True) -> ImageData:
    d = _cifar_dir(Path(root), download)
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


# ---------------------------------------------------------------- CIFAR-10, the shipped 5,000-image subset
SHIPPED_ROOT = DEFAULT_ROOT / "cifar10-5k"
CIFAR10_5K_SHA256 = {"train": "4c144d76a85ed98345e1060b39edd6b1cd69f3bc6299d42572bb3f3a56e782a7",
                     "test": "fc4475cb4e351bcea3a386204d966bf42e349094c1c27df42b32b66dff439a2e"}


def cifar10_5k_indices(split: str = "train") -> np.ndarray:
    """torchvision ``CIFAR10`` indices of the shipped subset: the first 1,000 images of each official batch."""
    starts = range(0, 50_000, 10_000) if split == "train" else [0]
    return np.concatenate([np.arange(s, s + 1000) for s in starts])


def load_cifar10_5k(split: str = "train", root: Path = SHIPPED_ROOT) -> ImageData:
    """The shipped CIFAR-10 subset: 5,000 training / 1,000 test images, uint8 (N, 3, 32, 32), offline."""
    path = Path(root) / f"{split}.npz"
    if not path.exists():
        raise DatasetNotFoundError(
            f"{path} is missing. It ships with the project: restore it with `git checkout -- data/cifar10-5k`, "
            "or rebuild it from the full CIFAR-10 with rotlib.data.cifar10_5k_indices(split).")
    with np.load(path) as f:
        images, labels = f["images"], f["labels"]
    if images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8 or len(images) != len(labels):
        raise ValueError(f"{path} is not the shipped file (images {images.dtype} {images.shape}); restore it with "
                         "`git checkout -- data/cifar10-5k`")
    return ImageData(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels).long(),
                     list(CIFAR10_CLASSES), CIFAR10_MEAN, CIFAR10_STD, "cifar10-5k", {"split": split, "source": str(path)})


# ---------------------------------------------------------------- image folder
def center_crop_square(images: torch.Tensor) -> torch.Tensor:
    """Crop (..., H, W) to its central (s, s) square, s = min(H, W)."""
    h, w = images.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return images[..., top:top + s, left:left + s]


def load_image(path: Path, size: int) -> torch.Tensor:
    """One image file -> uint8 (3, size, size): RGB (alpha composited on white, gray expanded), centre-cropped, resized."""
    from PIL import Image
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, rgba)
        im = im.convert("RGB")
        s = min(im.size)
        left, top = (im.width - s) // 2, (im.height - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def _list_images(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        classes = [p.name for p in subdirs]
        files = [(f, i) for i, d in enumerate(subdirs) for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS]
    else:
        classes = ["images"]
        files = [(f, 0) for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
    return [f for f, _ in files], [c for _, c in files], classes


def load_folder(path, split: str = "train", size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """Your own images. ``path/train`` and ``path/test`` are used when present; otherwise a
    reproducible ``test_fraction`` of the images is held out as the test split."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {root} does not exist; pass folder:PATH with a folder of images "
                                   "(one subfolder per class, or images directly inside)")
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    files, labels, classes = _list_images(root / split if has_split else root)
    if has_split:
        classes = _list_images(root / "train")[2]
    if not files:
        raise DatasetNotFoundError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {root}")
    if not has_split:
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(files), generator=g).tolist()
        n_test = max(1, round(test_fraction * len(files))) if len(files) > 1 else 0
        keep = sorted(perm[:n_test] if split == "test" else perm[n_test:])
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    images = torch.stack([load_image(f, size) for f in files])
    mean = tuple((images.float() / 255).mean(dim=(0, 2, 3)).tolist())
    std = tuple(max(s, 1e-3) for s in (images.float() / 255).std(dim=(0, 2, 3)).tolist())
    return ImageData(images, torch.tensor(labels, dtype=torch.long), classes, mean, std,
                     f"folder:{root}", {"split": split, "source": str(root)})


def load_dataset(name: str, split: str = "train", root=None, download: bool | None = None, size: int = 32) -> ImageData:
    """Load a dataset by name: ``cifar10-5k``, ``fashion-mnist``, ``cifar10`` or ``folder:PATH``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root or os.environ.get("ROTLIB_DATA", DEFAULT_ROOT))
    if download is None:
        download = os.environ.get("ROTLIB_OFFLINE", "0") != "1"
    if name == "cifar10-5k":
        return load_cifar10_5k(split)
    if name == "fashion-mnist":
        return load_fashion_mnist(split, root, download)
    if name == "cifar10":
        return load_cifar10(split, root, download)
    if name.startswith("folder:"):
        return load_folder(name[len("folder:"):], split, size)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
