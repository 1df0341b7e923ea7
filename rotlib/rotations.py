"""The pretext task's transformations (paper, Sec. 2.2).

RotNet rotates every image by a multiple of 90 degrees and asks a network
to say which rotation was applied. Multiples of 90 degrees are computed by
flipping and transposing the pixel grid, which is exact: no interpolation,
so no low-level artifact can give the rotation away. The 8-rotation set
(45-degree steps, Table 2) needs interpolation for the odd multiples; those
images get blurred pixels and black corners, a cue the paper avoids.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.transforms import _functional_tensor as _FT

# Named rotation sets of Table 2: name -> angles in degrees (counter-clockwise).
ROTATION_SETS: dict[str, tuple[int, ...]] = {
    "4": (0, 90, 180, 270),
    "8": (0, 45, 90, 135, 180, 225, 270, 315),
    "2-0/180": (0, 180),
    "2-90/270": (90, 270),
}
_ALIASES = {"2": "2-0/180", "0/180": "2-0/180", "90/270": "2-90/270"}


def rotation_angles(rotations: str | int = "4") -> tuple[int, ...]:
    """Angles (degrees) of a named rotation set; raises a helpful error for unknown names."""
    name = _ALIASES.get(str(rotations), str(rotations))
    if name not in ROTATION_SETS:
        known = ", ".join(repr(n) for n in ROTATION_SETS)
        raise ValueError(
            f"unknown rotation set {rotations!r}; choose one of {known} "
            f"(aliases: {', '.join(repr(a) for a in _ALIASES)})"
        )
    return ROTATION_SETS[name]


def canonical_rotation_set(rotations: str | int = "4") -> str:
    """The canonical name of a rotation set, e.g. "2" -> "2-0/180"."""
    rotation_angles(rotations)
    return _ALIASES.get(str(rotations), str(rotations))


def _check_square(images: torch.Tensor) -> None:
    if images.dim() < 2:
        raise ValueError(f"expected a tensor of shape (..., H, W), got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h != w:
        raise ValueError(
            f"exact rotation needs square images, got H={h}, W={w}: a 90-degree turn would "
            "change the shape. Centre-crop first, e.g. rotlib.data.center_crop_square(images)."
        )


def _check_batch(images: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"expected a batch of images (N, C, H, W), got shape {tuple(images.shape)}; "
                         "for one image add a batch dimension: images.unsqueeze(0)")


def _quarter_turns(k) -> int:
    """k as a whole number of quarter turns (2 and 2.0 are fine, 1.7 is an error)."""
    value = float(k)
    if not value.is_integer():
        raise ValueError(f"k counts quarter turns and must be a whole number, got {k!r}; "
                         "for other angles use rotate_by_angle(images, degrees)")
    return int(value)


def rotate(images: torch.Tensor, k: int) -> torch.Tensor:
    """Rotate (..., H, W) square images by k counter-clockwise quarter turns (k a whole number, any sign).

    Uses only flips and a transpose, so pixels are moved, never interpolated.
    Equal to ``torchvision.transforms.functional.rotate(images, 90 * k)``.
    """
    _check_square(images)
    k = _quarter_turns(k) % 4
    if k == 0:
        return images
    if k == 1:
        return images.transpose(-2, -1).flip(-2)
    if k == 2:
        return images.flip(-2).flip(-1)
    return images.transpose(-2, -1).flip(-1)


@functools.lru_cache(maxsize=64)
def _rotation_grid(degrees: float, h: int, w: int, dtype: torch.dtype = torch.float32,
                   device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """torchvision's sampling grid for a counter-clockwise rotation about the centre (its own helpers), made once
    per angle, size and device (no host-to-device copy per batch on a GPU)."""
    matrix = TF._get_inverse_affine_matrix([0.0, 0.0], -degrees, [0.0, 0.0], 1.0, [0.0, 0.0])
    theta = torch.tensor(matrix, dtype=dtype).reshape(1, 2, 3)
    return _FT._gen_affine_grid(theta, w=w, h=h, ow=w, oh=h).to(device)


def rotate_by_angle(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate by any angle counter-clockwise.

    Multiples of 90 are exact (:func:`rotate`); other angles use bilinear
    interpolation with zero fill, which blurs and leaves black corners: the
    low-level artifacts that make the 8-rotation task easier to "cheat".
    """
    degrees = float(degrees)
    if not math.isfinite(degrees):
        raise ValueError(f"degrees must be a finite number, got {degrees}")
    if degrees % 90 == 0:
        return rotate(images, degrees // 90)
    _check_square(images)
    if images.numel() == 0:            # torchvision cannot rotate an empty batch; there is nothing to move
        return images.clone()
    squeeze = images.dim() == 2
    x = images.unsqueeze(0) if squeeze else images
    dtype = x.dtype
    # = TF.rotate(x, degrees, BILINEAR) (a test checks it), with its sampling grid built once per angle and size:
    # building the grid costs ~30 ms a call here, sampling 16 small images ~1 ms (the 8-rotation RotNet's inputs).
    # As torchvision: floating images are sampled in their own dtype, integer images in float32 and rounded back.
    work = x if dtype.is_floating_point else x.float()
    flat = work.reshape(-1, *x.shape[-3:]) if x.dim() > 3 else work.unsqueeze(0)
    grid = _rotation_grid(degrees % 360, x.shape[-2], x.shape[-1], work.dtype, x.device)
    out = F.grid_sample(flat, grid.expand(len(flat), -1, -1, -1), mode="bilinear", padding_mode="zeros",
                        align_corners=False).reshape(x.shape)
    if not dtype.is_floating_point:
        out = out.round().clamp(0, 255)
    out = out.to(dtype)
    return out.squeeze(0) if squeeze else out


def rotate_batch(images: torch.Tensor, rotations: str | int = "4") -> tuple[torch.Tensor, torch.Tensor]:
    """Every image in every rotation of the named set (paper, Sec. 2.2).

    ``images`` is (N, C, H, W). Returns ``(rotated, labels)`` with
    ``rotated`` of shape (K*N, C, H, W), rotation-major: rows ``r*N .. r*N+N-1``
    are all images rotated by the set's r-th angle, and ``labels[i]`` is that r.
    """
    _check_batch(images)
    angles = rotation_angles(rotations)
    rotated = torch.cat([rotate_by_angle(images, a) for a in angles])
    labels = torch.arange(len(angles), device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


def draw_rotations(n: int, rotations: str | int = "4", generator: torch.Generator | None = None) -> torch.Tensor:
    """Each of ``n`` images' rotation index in the set, drawn on the CPU (:func:`random_rotation`'s labels)."""
    return torch.randint(len(rotation_angles(rotations)), (n,), generator=generator)


def random_rotation(images: torch.Tensor, rotations: str | int = "4", generator: torch.Generator | None = None,
                    labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One random rotation of the set per image: the alternative the paper compares against.

    ``labels``: each image's rotation index, drawn beforehand (as :class:`rotlib.train.RotationTask` draws a
    whole epoch's); else drawn now from ``generator``."""
    _check_batch(images)
    angles = rotation_angles(rotations)
    if labels is None:
        labels = draw_rotations(images.shape[0], rotations, generator)
    labels = labels.to(images.device)
    # every image in every rotation, then each image's drawn one: K times the (cheap) rotation work, but no
    # data-dependent shapes, so a GPU never waits for the host (boolean masks would sync every batch)
    every = torch.stack([rotate_by_angle(images, a) for a in angles])
    return every[labels, torch.arange(len(images), device=images.device)], labels
