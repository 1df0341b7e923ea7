"""``folder:PATH``: your own images, one subfolder per class (or flat), with ``train/`` and ``test/`` when present.

Each file is decoded by :func:`rotlib.data.decoding.decode` (the EXIF orientation applied, a size limit
checked before decoding), then its central square is resized: a 90-degree turn of a non-square image
changes its shape. Files that cannot be read, or are larger than ``max_pixels``, are skipped with one
warning naming them. Symbolic links to folders are not followed (a link loop cannot trap the reader).
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch

from ..checks import whole_number
from .decoding import IMAGE_EXTENSIONS, UnreadableImage, center_crop_square, decode, to_rgb8
from .imagedata import DatasetNotFoundError, ImageData


def load_image(path, size: int, max_pixels: int | None = None) -> torch.Tensor:
    """One image file -> uint8 (3, size, size), the way a person sees it.

    :func:`~rotlib.data.decoding.decode` applies the EXIF orientation (a phone photo stored sideways loads
    upright: the pretext task's label is "which way is up"; a JPEG is decoded at a reduced scale, much faster
    for big photos) and refuses images over ``max_pixels``; 16-bit images are scaled to 8 bits instead of
    clipped, transparency is composited on white and gray is expanded to RGB; then the central square is
    resized (Pillow, bilinear, antialiased). Raises :class:`~rotlib.data.decoding.UnreadableImage` (a
    ``ValueError``) when the file is not a readable image.
    """
    from PIL import Image
    square = center_crop_square(to_rgb8(decode(path, max_pixels, draft=size).image))
    im = Image.fromarray(square.permute(1, 2, 0).numpy()).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def _folder_root(path) -> Path:
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {root} does not exist; pass folder:PATH with a folder of images "
                                   "(one subfolder per class, or images directly inside)")
    return root


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), skipping hidden files and folders such as ``._x.jpg``.
    ``rglob`` does not descend into symbolic links to folders; a link to nothing or to itself is not a file."""
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


def _read_all(files: list[Path], size: int, root: Path, max_pixels: int | None = None
              ) -> tuple[list[torch.Tensor | None], list[str]]:
    """Decode every file; unreadable (or too large) ones become None and are reported (name and reason) in one warning."""
    images, skipped = [], []
    for f in files:
        try:
            images.append(load_image(f, size, max_pixels))
        except (OSError, ValueError, SyntaxError) as err:   # UnreadableImage (a ValueError) above all
            images.append(None)
            why = str(err) if isinstance(err, UnreadableImage) else f"{type(err).__name__}: {err}"
            skipped.append(f"{f.relative_to(root)} ({why})")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image file(s) in {root}: " + "; ".join(skipped[:5])
                      + ("; ..." if len(skipped) > 5 else "") + ". Delete or re-export them.", stacklevel=3)
    return images, skipped


def load_folder(path, split: str = "train", size: int = 32, test_fraction: float = 0.2, seed: int = 0,
                max_pixels: int | None = None) -> ImageData:
    """Your own images, one subfolder per class (or all in one folder: a single class).

    ``path/train`` and ``path/test`` are used when both exist, the class
    names of ``train/`` labelling both; otherwise a reproducible
    ``test_fraction`` of each class is held out as the test split. Every
    file of both splits is read first, so a broken file is reported before
    any training (it is skipped, with a warning naming it; so is an image
    larger than ``max_pixels``, None: :data:`rotlib.data.decoding.MAX_PIXELS`); a class folder
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
    images, skipped = _read_all(train_files + test_files, size, root, max_pixels)
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
