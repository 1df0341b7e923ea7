"""Batches of an :class:`~rotlib.data.ImageData` and their augmentation, on the whole batch at once."""
from __future__ import annotations

import torch

from ..checks import whole_number
from .imagedata import ImageData


def batches(data: ImageData, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
            drop_last: bool = False):
    """Yield (uint8 images, labels) batches; shuffled by ``generator`` when asked."""
    batch_size = whole_number(batch_size, "batch_size")
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for part in batch_slices(n, batch_size, drop_last):
        idx = order[part]
        yield data.images[idx], data.labels[idx]


def batch_slices(n: int, batch_size: int, drop_last: bool = False) -> list[slice]:
    """An epoch of ``n`` items cut into batches, as slices of its order: ``batch_size`` each, the last one shorter
    (or left out with ``drop_last``)."""
    stop = n - n % batch_size if drop_last else n
    return [slice(start, min(start + batch_size, stop)) for start in range(0, stop, batch_size)]


def draw_augment(n: int, padding: int = 4, flip: bool = True, generator: torch.Generator | None = None) -> dict:
    """The random numbers :func:`augment` uses for ``n`` images, on the CPU: each image's crop offsets (``oy``,
    ``ox``) and whether it is flipped (``flip``), drawn in that order."""
    draws = {}
    if padding:
        draws["oy"] = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        draws["ox"] = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    if flip:
        draws["flip"] = torch.rand(n, generator=generator) < 0.5
    return draws


def augment(images: torch.Tensor, padding: int = 4, flip: bool = True,
            generator: torch.Generator | None = None, draws: dict | None = None) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, for a whole batch at once.

    The official CIFAR-10 training augmentation (RandomCrop(32, padding=4) +
    RandomHorizontalFlip), vectorised over the batch with index arithmetic.
    ``draws``: the random numbers of :func:`draw_augment` drawn beforehand (e.g. a whole epoch's, copied to the
    GPU at once, so a step never waits for a host-to-device copy); else they are drawn now from ``generator``.
    """
    if images.dim() != 4:
        raise ValueError(f"augment expects a batch (N, C, H, W), got shape {tuple(images.shape)}")
    padding = whole_number(padding, "padding", minimum=0)
    n, c, h, w = images.shape
    dev = images.device
    if draws is None:
        draws = draw_augment(n, padding, flip, generator)
    if padding:
        padded = torch.nn.functional.pad(images, (padding,) * 4)
        oy, ox = draws["oy"].to(dev), draws["ox"].to(dev)
        rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]
        images = padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                        rows, cols]
    if flip:
        mask = draws["flip"].to(dev)
        images = torch.where(mask[:, None, None, None], images.flip(-1), images)
    return images
