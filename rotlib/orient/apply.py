"""Orienting files: one image (a path or bytes), every file of a folder, corrected copies written elsewhere.

Originals are never touched: corrected copies go to another folder (``--apply OUT``), written atomically
(:func:`rotlib.files.write_atomic`), and a destination that is an original is never written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import IMAGE_EXTENSIONS, Decoded, ImageTooLarge, UnreadableImage, decode, to_rgb8
from ..files import write_atomic
from .orienter import Orienter
from .turns import DEFAULT_MIN_CONFIDENCE, correct, describe_fix

_JPEG_QUALITY = 95


@dataclass
class OrientResult:
    """What happened to one file. ``turn``: degrees ccw the picture appears turned (None: not predicted)."""

    path: str
    status: str                       # "upright", "rotated", "unsure" or "skipped"
    turn: int | None = None
    confidence: float | None = None
    probabilities: tuple[float, ...] | None = None
    exif_orientation: int | None = None
    size: tuple[int, int] | None = None
    message: str = ""
    written: str | None = None
    write_failed: bool = False        # a corrected copy was due and its write failed (the CLI then exits non-zero)
    decoded: Decoded | None = field(default=None, repr=False)   # kept only when asked (widget, notebook)

    @property
    def fix(self) -> str:
        return describe_fix(self.turn) if self.status == "rotated" else "none"

    def corrected(self) -> torch.Tensor:
        """The full-resolution picture put upright (unchanged if upright or unsure); needs ``decoded``."""
        if self.decoded is None:
            raise ValueError("this result did not keep its decoded image (keep_image=True)")
        return correct(self.decoded.image, self.turn) if self.status == "rotated" else self.decoded.image

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("path", "status", "turn", "confidence", "probabilities",
                                              "exif_orientation", "size", "message", "written",
                                              "write_failed")}


def orient_image(orienter: Orienter, source, name: str | None = None,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE, keep_image: bool = False,
                 max_pixels: int | None = None) -> OrientResult:
    """Predict one image (a path or raw bytes); never raises for bad files: they come back as ``skipped``,
    and so do images larger than ``max_pixels`` (None: :data:`rotlib.data.MAX_PIXELS`; 0: no limit)."""
    name = name or (str(source) if not isinstance(source, (bytes, bytearray, memoryview)) else "upload")
    try:
        dec = decode(source, max_pixels)
    except ImageTooLarge as err:
        return OrientResult(name, "skipped", message=f"too large: {err}")
    except UnreadableImage as err:
        suffix = Path(name).suffix.lower()
        kind = "corrupt or unsupported image" if suffix in IMAGE_EXTENSIONS else "not an image"
        return OrientResult(name, "skipped", message=f"{kind}: {err}")
    turn, conf, p = orienter.predict(dec.image)
    status = "unsure" if conf < min_confidence else ("upright" if turn == 0 else "rotated")
    notes = []
    if dec.frames > 1:
        notes.append(f"animated ({dec.frames} frames): first frame checked")
    if status == "unsure":
        notes.append(f"confidence {conf:.2f} < {min_confidence:.2f}: left alone")
    return OrientResult(name, status, turn, conf, tuple(round(float(v), 4) for v in p), dec.exif_orientation,
                        dec.size, "; ".join(notes), decoded=dec if keep_image else None)


def _pil_image(image: torch.Tensor):
    from PIL import Image
    if image.dtype == torch.uint16:
        image = to_rgb8(image) if image.shape[0] == 3 else image
    array = image.permute(1, 2, 0).contiguous().numpy().astype(np.uint8)
    return Image.fromarray(array, "RGBA" if image.shape[0] == 4 else "RGB")


def write_corrected(dec: Decoded, turn: int, dest: Path) -> Path:
    """Write ``dec`` rotated back by ``turn`` to ``dest`` (atomically), in the format its suffix names.

    JPEGs are re-encoded at quality 95 (a quarter turn of a JPEG is not lossless
    in general); EXIF is kept with its orientation reset to 1, and the ICC profile.
    """
    from PIL import Image
    image = correct(dec.image, turn)
    fmt = Image.registered_extensions().get(dest.suffix.lower())
    if fmt is None:
        dest, fmt = dest.with_name(dest.name + ".png"), "PNG"
    pil = _pil_image(image)
    if fmt == "JPEG" and pil.mode == "RGBA":
        pil = pil.convert("RGB")
    options = {"quality": _JPEG_QUALITY} if fmt in ("JPEG", "WEBP") else {}
    if dec.exif and fmt in ("JPEG", "PNG", "WEBP"):
        options["exif"] = dec.exif
    if dec.icc_profile and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        options["icc_profile"] = dec.icc_profile
    write_atomic(dest, lambda tmp: pil.save(tmp, format=fmt, **options))
    return dest


def list_files(path, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """The files to look at: ``path`` itself, or the non-hidden files in the folder (sorted; sub-folders with ``recursive``)."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist; pass an image file or a folder of images")
    found = path.rglob("*") if recursive else path.iterdir()
    files = []
    for f in found:
        rel = f.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        if exclude is not None and f.resolve().is_relative_to(exclude):
            continue
        files.append(f)
    return sorted(files)


def check_output(path, out) -> Path:
    """Refuse an output folder that is the input folder (corrected copies would sit beside, or over, the originals)."""
    path, out = Path(path).expanduser().resolve(), Path(out).expanduser().resolve()
    source_dir = path if path.is_dir() else path.parent
    if out == source_dir:
        raise ValueError(f"--apply {out} is the folder of the originals; write the corrected copies to another "
                         "folder (originals are never modified)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--apply {out} exists and is not a folder")
    return out


def orient_paths(orienter: Orienter, path, min_confidence: float = DEFAULT_MIN_CONFIDENCE, apply_to=None,
                 overwrite: bool = False, recursive: bool = False, on_result=None,
                 max_pixels: int | None = None) -> list[OrientResult]:
    """Predict every file under ``path``; with ``apply_to``, write corrected copies of the rotated ones there.

    Upright, unsure and unreadable files are reported and not written. An
    existing file in ``apply_to`` is kept unless ``overwrite``; a destination
    that is an original is never written. ``on_result(result)`` is called as
    each file is done (the CLI prints its table row). Images larger than ``max_pixels``
    (None: :data:`rotlib.data.MAX_PIXELS`) are skipped before they are decoded.
    """
    root = Path(path).expanduser()
    out = check_output(root, apply_to) if apply_to is not None else None
    files = list_files(root, recursive, exclude=out if root.is_dir() else None)
    base = root if root.is_dir() else root.parent
    results = []
    for f in files:
        res = orient_image(orienter, f, str(f.relative_to(base)), min_confidence, keep_image=out is not None,
                           max_pixels=max_pixels)
        if out is not None and res.status == "rotated":
            dest = out / f.relative_to(base)
            if dest.exists() and dest.resolve() == f.resolve():
                res.message = "not written: the destination is the original"
            elif dest.exists() and not overwrite:
                res.message = f"not written: {dest} exists (--overwrite to replace it)"
            elif res.decoded.frames > 1:
                res.message += "; not written: animated images are not rewritten"
            else:
                try:
                    res.written = str(write_corrected(res.decoded, res.turn, dest))
                    if res.decoded.image.dtype == torch.uint16:
                        res.message = "16-bit image written as 8-bit"
                except (OSError, ValueError) as err:
                    res.message, res.write_failed = f"not written: {err}", True
        res.decoded = None                      # one image in memory at a time
        results.append(res)
        if on_result is not None:
            on_result(res)
    return results
