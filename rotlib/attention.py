"""Attention maps of conv layers (paper Sec. 3.1, Fig. 3 and Fig. 6).

The paper visualises where a network "looks" by the spatial attention map
of a conv layer: raise the magnitude of every activation to a power p and
sum over channels, A(i, j) = sum_c |a_c(i, j)|^p (Zagoruyko & Komodakis
2017). Larger p puts more weight on the most active locations. Because the
pretext task asks "which way is up?", a RotNet should attend to the object
and move its attention with the object when the image rotates (Fig. 6):
we measure that equivariance as a number.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .rotations import rotate


def attention_map(features: torch.Tensor, p: float = 2) -> torch.Tensor:
    """(N, C, H, W) activations -> (N, H, W) map sum_c |a|^p, before any normalisation or upsampling."""
    if features.dim() != 4:
        raise ValueError(f"expected features of shape (N, C, H, W), got {tuple(features.shape)}")
    if p <= 0:
        raise ValueError(f"the power p must be positive (the paper uses 1, 2 and 4), got {p}")
    return features.float().abs().pow(p).sum(dim=1)


def normalize_maps(maps: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Scale each (H, W) map to [0, 1] and optionally upsample (bilinear) to ``size`` x ``size`` for overlays."""
    if size is not None:
        maps = F.interpolate(maps.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False).squeeze(1)
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    hi = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)


@torch.no_grad()
def block_attention(model, images: torch.Tensor, block: str, p: float = 2) -> torch.Tensor:
    """Raw attention maps (N, H, W) of a NetworkInNetwork block for normalised images."""
    model.eval()
    return attention_map(model(images.float(), out_feat_keys=[block])[0], p)


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between paired maps (N, H, W) -> (N,)."""
    a = a.flatten(1).double(); b = b.flatten(1).double()
    a = a - a.mean(1, keepdim=True); b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


@torch.no_grad()
def equivariance_score(feature_fn, images: torch.Tensor, p: float = 2) -> float:
    """How well attention follows a rotation of the input (1: perfectly, ~0: not at all).

    For each of the 3 non-trivial quarter turns k, the map of the rotated
    images is rotated back by -k and correlated (Pearson) with the map of the
    originals; the score is the mean over images and the 3 rotations.
    ``feature_fn`` maps an image batch (N, C, H, W) to activations (N, C', H', W').
    """
    base = attention_map(feature_fn(images), p)
    scores = [map_correlation(rotate(attention_map(feature_fn(rotate(images, k)), p), -k), base) for k in (1, 2, 3)]
    return torch.stack(scores).mean().item()


def model_equivariance(model, images: torch.Tensor, block: str, p: float = 2) -> float:
    """:func:`equivariance_score` of one block of a NetworkInNetwork."""
    model.eval()
    return equivariance_score(lambda x: model(x.float(), out_feat_keys=[block])[0], images, p)
