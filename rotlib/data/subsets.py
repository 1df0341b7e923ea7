"""Subsets of an :class:`~rotlib.data.ImageData`: the first k per class, k random per class, n at random."""
from __future__ import annotations

import torch

from ..checks import optional_whole_number, whole_number
from .imagedata import ImageData


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


def random_subset(data: ImageData, n: int | None, seed: int = 0) -> ImageData:
    """At most n images drawn at random (reproducible by seed); None or n >= len: all images."""
    n = optional_whole_number(n, "the number of images n")
    if n is None or n >= len(data):
        return data
    g = torch.Generator().manual_seed(seed)
    return data.subset(torch.sort(torch.randperm(len(data), generator=g)[:n]).values)
