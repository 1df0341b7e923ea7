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
  ``train/`` and ``test/`` subfolders when present; turned upright by their
  EXIF orientation and centre-cropped to a square (a 90-degree turn of a
  non-square image changes its shape). See :func:`load_folder`.

Images stay uint8 (N, C, H, W) until a batch is drawn; normalisation,
augmentation and rotation then run on the whole batch at once, on the
training device (no per-sample PIL work, so loading never starves the model).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checks import optional_whole_number, whole_number
from .distributed import on_main

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
    _stats: dict = field(default_factory=dict, init=False, repr=False, compare=False)   # device -> (mean, std)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        channels = self.images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels or min(self.std) <= 0:
            raise ValueError(f"mean and std need one value per channel ({channels}) and std > 0, "
                             f"got mean={self.mean}, std={self.std}")

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
        device = images_uint8.device
        if device not in self._stats:      # made once per device: no host-to-device copy per batch on a GPU
            self._stats[device] = (torch.tensor(self.mean, device=device).view(1, -1, 1, 1),
                                   torch.tensor(self.std, device=device).view(1, -1, 1, 1))
        mean, std = self._stats[device]
        return (images_uint8.float() / 255.0 - mean) / std


def first_per_class(data: ImageData, k: int | None) -> ImageData:
    """The first k images of each class, in dataset order (the paper's semi-supervised split); None: all.

    Raises when a class has fewer than k images: a smaller subset would be
    reported as "k labels per class" while using fewer.
    """
    if k is None:
        return data
    k = whole_number(k, "per_class (labelled images per class)")
    counts = torch.bincount(data.labels, minlength=len(data.classes)).tolist()
    short = [f"{data.classes[c]!r} has {n}" for c, n in enumerate(counts) if n < k]
    if short:
        fix = f"use per_class={min(counts)} or less, or" if min(counts) else "use"
        raise ValueError(f"{k} labelled images per class requested, but {len(short)} of {len(counts)} classes have "
                         f"fewer ({', '.join(short[:5])}{', ...' if len(short) > 5 else ''}); {fix} more training "
                         "images (n_train)")
    picked = [torch.nonzero(data.labels == c).flatten()[:k] for c in range(len(data.classes))]
    return data.subset(torch.sort(torch.cat(picked)).values)


def stratified_subset(data: ImageData, per_class: int | None, seed: int = 0) -> ImageData:
    """``per_class`` random images of each class, reproducible by seed (None: all images)."""
    if per_class is None:
        return data
    per_class = whole_number(per_class, "per_class (images per class)")
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(len(data.classes)):
        idx = torch.nonzero(data.labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {data.classes[c]!r} has only {len(idx)} images, {per_class} requested")
        picked.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return data.subset(torch.sort(torch.cat(picked)).values)


def random_subset(data: ImageData, n: int | None, seed: int = 0) -> ImageData:
    """At most n images drawn at random (reproducible by seed); None or n >= len: all images."""
    n = optional_whole_number(n, "the number of images n")
    if n is None or n >= len(data):
        return data
    g = torch.Generator().manual_seed(seed)
    return data.subset(torch.sort(torch.randperm(len(data), generator=g)[:n]).values)


def batches(data: ImageData, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
            drop_last: bool = False):
    """Yield (uint8 images, labels) batches; shuffled by ``generator`` when asked."""
    batch_size = whole_number(batch_size, "batch_size")
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
    if images.dim() != 4:
        raise ValueError(f"augment expects a batch (N, C, H, W), got shape {tuple(images.shape)}")
    padding = whole_number(padding, "padding", minimum=0)
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


def load_fashion_mnist(split: str = "train", root: Path = DEFAULT_ROOT, download: bool = True) -> ImageData:
    d = _fashion_mnist_dir(Path(root), download)
    img_file, lbl_file = _FMNIST_FILES[split]
    images = torch.from_numpy(_read_idx(d / img_file).copy()).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(d / lbl_file).astype(np.int64))
    return ImageData(images, labels, list(FASHION_MNIST_CLASSES), FASHION_MNIST_MEAN, FASHION_MNIST_STD,
                     "fashion-mnist", {"split": split, "source": str(d)})


# ---------------------------------------------------------------- CIFAR-10
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


def load_image(path, size: int) -> torch.Tensor:
    """One image file -> uint8 (3, size, size), the way a person sees it.

    The EXIF orientation is applied (a phone photo stored sideways loads
    upright: the pretext task's label is "which way is up"), 16-bit images
    are scaled to 8 bits instead of clipped, transparency is composited on
    white and gray is expanded to RGB; then the central square is resized.
    Raises ``OSError`` (or ``ValueError``) when the file is not a readable image.

    Pillow reads the file: ``torchvision.io.decode_image`` does EXIF and
    16-bit too, but it is deprecated since torchvision 0.29, cannot read
    BMP or TIFF, and drops transparency.
    """
    from PIL import Image, ImageOps
    with Image.open(path) as im:
        im.draft(None, (size, size))               # JPEG: decode at a reduced scale, much faster for big photos
        im = ImageOps.exif_transpose(im)           # decodes every pixel: a truncated file fails here
    if im.mode.startswith("I"):                    # 16-bit gray ("I;16", "I"): scale to 8 bits, do not clip at 255
        im = Image.fromarray((np.asarray(im, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    im = im.convert("RGB")
    s = min(im.size)
    left, top = (im.width - s) // 2, (im.height - s) // 2
    im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def _folder_root(path) -> Path:
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {root} does not exist; pass folder:PATH with a folder of images "
                                   "(one subfolder per class, or images directly inside)")
    return root


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), skipping hidden files and folders such as ``._x.jpg``."""
    return [f for f in sorted(folder.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
            and not any(part.startswith(".") for part in f.relative_to(folder).parts)]


def _labelled_files(folder: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """Files, labels and class names of a folder with one subfolder per class (or images directly inside: one class).

    ``classes`` (those of ``train/``) maps a ``test/`` folder by name, so a
    test folder that lacks a class keeps the right labels for the others.
    """
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [d.name for d in subdirs] or ["images"]
    if classes is None:
        classes = names
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ValueError(f"{folder} has classes that train/ does not have: {unknown}; the classes of train/ are "
                         f"{classes}. Rename or move those folders so both splits use the same class names.")
    pairs = [(f, classes.index(d.name)) for d in subdirs for f in _image_files(d)] if subdirs else \
        [(f, 0) for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")]
    return [f for f, _ in pairs], [c for _, c in pairs], classes


def _holdout(labels: list[int], num_classes: int, fraction: float, seed: int) -> list[int]:
    """Indices of a reproducible ``fraction`` of each class's images (at least one stays for training)."""
    g = torch.Generator().manual_seed(seed)
    held = []
    for c in range(num_classes):
        idx = [i for i, label in enumerate(labels) if label == c]
        n_test = min(round(fraction * len(idx)), len(idx) - 1)
        held += [idx[j] for j in torch.randperm(len(idx), generator=g)[:n_test].tolist()]
    return sorted(held)


def _read_all(files: list[Path], size: int, root: Path) -> tuple[list[torch.Tensor | None], list[str]]:
    """Decode every file; unreadable ones become None and are reported (name and reason) in one warning."""
    images, skipped = [], []
    for f in files:
        try:
            images.append(load_image(f, size))
        except (OSError, ValueError, SyntaxError) as err:   # what Pillow raises for truncated or foreign files
            images.append(None)
            skipped.append(f"{f.relative_to(root)} ({type(err).__name__}: {err})")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image file(s) in {root}: " + "; ".join(skipped[:5])
                      + ("; ..." if len(skipped) > 5 else "") + ". Delete or re-export them.", stacklevel=3)
    return images, skipped


def load_folder(path, split: str = "train", size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """Your own images, one subfolder per class (or all in one folder: a single class).

    ``path/train`` and ``path/test`` are used when both exist, the class
    names of ``train/`` labelling both; otherwise a reproducible
    ``test_fraction`` of each class is held out as the test split. Every
    file of both splits is read first, so a broken file is reported before
    any training (it is skipped, with a warning naming it); a class folder
    without readable images or an empty split is an error. Both splits are
    normalised with the training split's mean and std.
    """
    root = _folder_root(path)
    size = whole_number(size, "size (image side in pixels)")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    if has_split:
        train_files, train_labels, classes = _labelled_files(root / "train")
        test_files, test_labels, _ = _labelled_files(root / "test", classes)
    else:
        train_files, train_labels, classes = _labelled_files(root)
        test_files, test_labels = [], []
    if not train_files:
        raise DatasetNotFoundError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in "
                                   f"{root / 'train' if has_split else root}")
    images, skipped = _read_all(train_files + test_files, size, root)
    labels = train_labels + test_labels
    split_of = ["train"] * len(train_files) + ["test"] * len(test_files)
    ok = [i for i, x in enumerate(images) if x is not None]
    if not has_split:
        for j in _holdout([labels[i] for i in ok], len(classes), test_fraction, seed):
            split_of[ok[j]] = "test"
    picked = {s: [i for i in ok if split_of[i] == s] for s in ("train", "test")}
    missing = [c for c in range(len(classes)) if all(labels[i] != c for i in picked["train"])]
    if missing:
        raise ValueError(f"class folder(s) {[classes[c] for c in missing]} of {root} have no readable training "
                         "images; add images or remove the folder(s)")
    for s in ("train", "test"):
        if not picked[s]:
            raise ValueError(f"the {s} split of {root} has no images ({len(ok)} readable in all); add images "
                             + ("to its test/ folder" if has_split else "(at least 2 in one class)"))
    train_images = torch.stack([images[i] for i in picked["train"]]).float() / 255
    mean = tuple(train_images.mean(dim=(0, 2, 3)).tolist())
    std = tuple(max(s, 1e-3) for s in train_images.std(dim=(0, 2, 3)).tolist())
    return ImageData(torch.stack([images[i] for i in picked[split]]), torch.tensor([labels[i] for i in picked[split]], dtype=torch.long),
                     classes, mean, std, f"folder:{root}", {"split": split, "source": str(root), "skipped": skipped})


def fingerprint(name: str) -> dict | None:
    """What identifies a dataset's contents in cache keys.

    For ``folder:PATH``: the folder's resolved path and a hash of every image
    file's name, size and modification time, so changing the photos trains
    anew. None for the built-in datasets, whose contents are fixed.
    """
    if not name.startswith("folder:"):
        return None
    root = _folder_root(name[len("folder:"):])
    h = hashlib.sha256()
    for f in _image_files(root):
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"root": str(root), "files": h.hexdigest()[:16]}


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
