"""Decoding image files: the one decoder of rotlib, used by folder datasets and by ``rotlib.orient``.

:func:`decode` turns a file (path or bytes) into the picture a viewer shows:
the EXIF orientation is applied, so a phone photo stored sideways with a tag
that puts it upright decodes upright. Pillow reads every format (JPEG, PNG,
WebP, GIF, BMP, TIFF, ...), keeps transparency and 16-bit grayscale, and
reads the header before any pixel, so an image whose header announces more
than ``max_pixels`` pixels is refused before it is decoded (a 30000x30000
PNG can be a 1 MB file that decodes to gigabytes: a decompression bomb).
``torchvision.io.decode_image`` has no such guard, cannot read BMP or TIFF,
and its codecs are deprecated since torchvision 0.29; it decodes the formats
it reads to the same pixels as Pillow.
"""
from __future__ import annotations

import io
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MAX_PIXELS = 89_478_485   # default max_pixels: Pillow's default Image.MAX_IMAGE_PIXELS (0.25 GiB of 24-bit RGB)
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
EXIF_ORIENTATION = 0x0112
_OPENING = threading.Lock()   # guards the moment Pillow's own pixel limit is lifted, see _open


class UnreadableImage(ValueError):
    """A file that cannot be decoded as an image; the message says why."""


class ImageTooLarge(UnreadableImage):
    """An image whose header announces more pixels than the limit; refused before decoding."""


@dataclass
class Decoded:
    """One decoded picture, as a viewer shows it (EXIF orientation applied).

    ``image`` is (3, H, W) RGB or (4, H, W) RGBA, uint8, or uint16 for 16-bit grayscale.
    """

    image: torch.Tensor
    exif_orientation: int | None = None   # the EXIF tag that was honoured (None: no tag)
    frames: int = 1                       # >1: animated; only the first frame is used
    format: str | None = None             # Pillow's format name (JPEG, PNG, ...)
    exif: bytes | None = None             # EXIF to keep in a corrected copy, orientation reset to 1
    icc_profile: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as displayed."""
        return int(self.image.shape[-1]), int(self.image.shape[-2])


def _reason(err: Exception) -> str:
    reason = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(err).split("\n")[0])[:120]
    return reason or type(err).__name__


def _open(data: bytes):
    """``PIL.Image.open`` (reads the header only) without Pillow's own pixel limit, which would refuse large
    images before their size can be checked against ``max_pixels``; the limit is lifted for that moment only."""
    from PIL import Image
    with _OPENING:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def check_size(width: int, height: int, max_pixels: int | None = None, name: str = "the image") -> None:
    """Raise :class:`ImageTooLarge` when ``width * height`` exceeds ``max_pixels`` (None: :data:`MAX_PIXELS`; 0: no limit)."""
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    if limit and width * height > limit:
        raise ImageTooLarge(f"{name} is {width}x{height} = {width * height:,} pixels, more than the limit of "
                            f"{limit:,} (a guard against decompression bombs); if you trust it, raise the limit: "
                            "max_pixels=N, or `python -m rotlib orient --max-pixels N`")


def decode(source, max_pixels: int | None = None, draft: int | None = None) -> Decoded:
    """Decode a file path or raw bytes into the picture a viewer shows (EXIF orientation applied).

    Images whose header says more than ``max_pixels`` pixels (None: :data:`MAX_PIXELS`; 0: no limit) raise
    :class:`ImageTooLarge` before any pixel is decoded. ``draft``: a JPEG may be decoded at a reduced scale
    (1/2 to 1/8) that keeps both sides at least ``draft`` pixels, much faster for a thumbnail of a big photo.
    Transparency is kept (RGBA), gray is expanded to RGB, 16-bit gray stays uint16.
    Raises :class:`UnreadableImage` for files that are not images or are corrupt.
    """
    from PIL import Image, ImageOps
    name = "the image" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    try:
        data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
    except OSError as err:
        raise UnreadableImage(f"cannot read: {err.strerror or err}") from None
    if not data:
        raise UnreadableImage("empty file")
    try:
        im = _open(data)
    except Exception as err:    # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError, ...
        raise UnreadableImage(_reason(err)) from None
    with im:
        check_size(*im.size, max_pixels, name)
        try:
            exif = im.getexif()
            tag = exif.get(EXIF_ORIENTATION)
            frames, fmt, icc = getattr(im, "n_frames", 1), im.format, im.info.get("icc_profile")
            if draft:
                im.draft(None, (draft, draft))
            with warnings.catch_warnings():          # the limit is ours (checked above), not Pillow's
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()
                image = _tensor(ImageOps.exif_transpose(im))
            keep = None
            if exif and fmt in ("JPEG", "PNG", "WEBP"):     # after the transpose, which reads the tag
                exif[EXIF_ORIENTATION] = 1
                keep = exif.tobytes()
        except ImageTooLarge:
            raise
        except Exception as err:
            raise UnreadableImage(_reason(err)) from None
    return Decoded(image, int(tag) if tag else None, frames, fmt, keep, icc)


def _tensor(im) -> torch.Tensor:
    """A Pillow image -> (3|4, H, W) uint8, or (3, H, W) uint16 for 16-bit gray."""
    if im.mode.startswith("I"):                                # 16-bit gray ("I;16", or "I" holding 0..65535)
        array = np.asarray(im).clip(0, 65535).astype(np.uint16)[..., None].repeat(3, axis=2)
    else:
        alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and im.has_transparency_data)
        array = np.asarray(im.convert("RGBA" if alpha else "RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def to_rgb8(image: torch.Tensor) -> torch.Tensor:
    """(3|4, H, W) uint8/uint16 -> (3, H, W) uint8: 16 bits keep their high byte (scaled, not clipped),
    transparency is composited on white."""
    if image.dtype == torch.uint16:
        from torchvision.transforms.v2.functional import to_dtype
        image = to_dtype(image, torch.uint8, scale=True)
    if image.shape[-3] == 4:
        rgb, alpha = image[..., :3, :, :].float(), image[..., 3:, :, :].float() / 255
        image = (rgb * alpha + 255 * (1 - alpha)).round().to(torch.uint8)
    return image


def center_crop_square(images: torch.Tensor) -> torch.Tensor:
    """Crop (..., H, W) to its central (s, s) square, s = min(H, W)."""
    h, w = images.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return images[..., top:top + s, left:left + s]
