"""``ImageData``: a dataset held in memory as uint8 tensors, with the normalisation to apply per batch."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says how to get it."""


def normalize(images_uint8: torch.Tensor, mean, std, stats: dict | None = None) -> torch.Tensor:
    """uint8 batch (N, C, H, W) -> float batch, scaled to [0, 1] and standardised per channel.

    ``stats`` (a dict, device -> (mean, std) tensors) keeps the statistics made once per device: no
    host-to-device copy per batch on a GPU. :meth:`ImageData.normalize` and the orientation tool use this.
    """
    device = images_uint8.device
    made = stats.get(device) if stats is not None else None
    if made is None:
        made = (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))
        if stats is not None:
            stats[device] = made
    return (images_uint8.float() / 255.0 - made[0]) / made[1]


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
        return normalize(images_uint8, self.mean, self.std, self._stats)
