"""Which way is up? A RotNet put to work on photos whose orientation was lost (notebook 8, ``python -m rotlib orient``).

The pretext task *is* a useful task: a RotNet answers "by how many quarter
turns was this image rotated?", so undoing that turn puts a photo upright.

The pipeline for one file:

1. decode it with ``torchvision.io.decode_image(..., apply_exif_orientation=True)``
   (PIL for the formats torchvision does not read, e.g. BMP and TIFF, and for
   images with transparency): the picture as a viewer shows it, so a photo that
   only needs its EXIF tag honoured is not "rotated";
2. the model's view: centre-crop to a square, resize (antialiased) to the
   model's input size (32x32 for the CIFAR-10 RotNet: a thumbnail), normalise
   with the training data's mean/std;
3. the RotNet's softmax over the 4 turns (optionally averaged over the 4
   rotated copies: test-time augmentation), the most likely turn and its
   probability, the *confidence*;
4. below a confidence threshold the image is reported as unsure and left
   alone; otherwise the full-resolution decoded image is rotated back
   (``torch.rot90``) and written to another folder. Originals are never touched.

Turns follow :func:`rotlib.rotate`: ``k`` counter-clockwise quarter turns
were applied to an upright picture; the fix is ``k`` clockwise quarter turns.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import data as D
from .rotations import rotate

TURNS = (0, 90, 180, 270)            # degrees counter-clockwise, the RotNet's classes in order
DEFAULT_MIN_CONFIDENCE = 0.9         # below it an image is "unsure" and left alone: about 95% right on about 46% of the test cases (notebook 8)
EXIF_ORIENTATION = 0x0112
_JPEG_QUALITY = 95
# Statistics and input size of the datasets a cached RotNet may have been trained on (see rotlib.data).
_DATASET_STATS = {"cifar10": (D.CIFAR10_MEAN, D.CIFAR10_STD, 32), "cifar10-5k": (D.CIFAR10_MEAN, D.CIFAR10_STD, 32),
                  "fashion-mnist": (D.FASHION_MNIST_MEAN, D.FASHION_MNIST_STD, 28)}


class UnreadableImage(ValueError):
    """A file that cannot be decoded as an image; the message says why."""


def describe_turn(degrees: int | None) -> str:
    """How a picture turned by ``degrees`` counter-clockwise looks: '0°', '90° ccw', '180°', '90° cw'."""
    return {None: "-", 0: "0°", 90: "90° ccw", 180: "180°", 270: "90° cw"}[degrees]


def describe_fix(degrees: int | None) -> str:
    """The rotation that puts it upright (the opposite turn)."""
    return {None: "-", 0: "none", 90: "rotate 90° cw", 180: "rotate 180°", 270: "rotate 90° ccw"}[degrees]


# ---------------------------------------------------------------- decoding
@dataclass
class Decoded:
    """One decoded picture, as a viewer shows it (EXIF orientation applied).

    ``image`` is (3, H, W) RGB or (4, H, W) RGBA, uint8, or uint16 for 16-bit PNGs.
    """

    image: torch.Tensor
    exif_orientation: int | None = None   # the EXIF tag that was honoured (None: no tag)
    frames: int = 1                       # >1: animated; only the first frame is used
    format: str | None = None             # PIL's format name (JPEG, PNG, ...)
    exif: bytes | None = None             # EXIF to keep in a corrected copy, orientation reset to 1
    icc_profile: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as displayed."""
        return int(self.image.shape[-1]), int(self.image.shape[-2])


def _bytes_of(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return Path(source).read_bytes()


def _decode_pil(data: bytes):
    """PIL decode with EXIF transpose: RGB or RGBA uint8 tensor, frames; raises UnreadableImage."""
    import numpy as np
    from PIL import Image, ImageOps
    try:
        with Image.open(io.BytesIO(data)) as im:
            frames = getattr(im, "n_frames", 1)
            im.load()
            im = ImageOps.exif_transpose(im)
            alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and im.has_transparency_data)
            im = im.convert("RGBA" if alpha else "RGB")
            array = np.asarray(im, dtype=np.uint8).copy()
    except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError, ...
        reason = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(err).split("\n")[0])[:120]
        raise UnreadableImage(reason or type(err).__name__) from None
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), frames


def _pil_info(data: bytes) -> dict:
    """Header facts read by PIL without decoding the pixels (empty if PIL does not know the file)."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
            tag = exif.get(EXIF_ORIENTATION)
            keep = None
            if exif and im.format in ("JPEG", "PNG", "WEBP"):
                exif[EXIF_ORIENTATION] = 1
                keep = exif.tobytes()
            return {"format": im.format, "orientation": int(tag) if tag else None, "exif": keep,
                    "icc_profile": im.info.get("icc_profile"), "frames": getattr(im, "n_frames", 1),
                    "transparency": im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and im.has_transparency_data)}
    except Exception:
        return {}


def decode(source) -> Decoded:
    """Decode a file path or raw bytes into the picture a viewer shows (EXIF orientation applied).

    torchvision's decoder (JPEG, PNG, GIF, WebP) with ``mode=RGB``; PIL for the
    formats torchvision does not read (BMP, TIFF, ...) and for images with
    transparency (torchvision's RGB mode would drop the alpha channel).
    Raises :class:`UnreadableImage` for files that are not images or are corrupt.
    """
    from torchvision.io import ImageReadMode, decode_image
    try:
        data = _bytes_of(source)
    except OSError as err:
        raise UnreadableImage(f"cannot read: {err.strerror or err}") from None
    if not data:
        raise UnreadableImage("empty file")
    info = _pil_info(data)
    image = frames = None
    if not info.get("transparency"):
        try:
            with warnings.catch_warnings():          # torchvision 0.29 deprecates its image codecs (for torchcodec)
                warnings.simplefilter("ignore", DeprecationWarning)
                image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB,
                                     apply_exif_orientation=True)
            frames = image.shape[0] if image.dim() == 4 else 1
            image = image[0] if image.dim() == 4 else image
        except RuntimeError:
            image = None
    if image is None:
        image, frames = _decode_pil(data)
    return Decoded(image, info.get("orientation"), max(frames, info.get("frames", 1)), info.get("format"),
                   info.get("exif"), info.get("icc_profile"))


def to_rgb8(image: torch.Tensor) -> torch.Tensor:
    """(3|4, H, W) uint8/uint16 -> (3, H, W) uint8; transparency composited on white (like rotlib.data.load_image)."""
    if image.dtype == torch.uint16:
        from torchvision.transforms.v2.functional import to_dtype
        image = to_dtype(image, torch.uint8, scale=True)
    if image.shape[-3] == 4:
        rgb, alpha = image[..., :3, :, :].float(), image[..., 3:, :, :].float() / 255
        image = (rgb * alpha + 255 * (1 - alpha)).round().to(torch.uint8)
    return image


def model_view(image: torch.Tensor, size: int, channels: int = 3) -> torch.Tensor:
    """What the RotNet sees: (..., C, H, W) -> (..., channels, size, size) uint8, centre-cropped square, resized.

    A 90-degree turn of a non-square picture changes its shape, so the model
    looks at the central square, downscaled with antialiasing.
    """
    from torchvision.transforms.v2.functional import resize, rgb_to_grayscale
    view = D.center_crop_square(to_rgb8(image))
    if view.shape[-1] != size:
        view = resize(view, [size, size], antialias=True)
    if channels == 1:
        view = rgb_to_grayscale(view)
    return view.contiguous()


def correct(image: torch.Tensor, turn: int) -> torch.Tensor:
    """Undo a counter-clockwise turn of ``turn`` degrees (any shape (..., H, W); pixels only move)."""
    if turn % 90:
        raise ValueError(f"turn must be a multiple of 90 degrees, got {turn}")
    return torch.rot90(image, -(turn // 90), dims=(-2, -1))


# ---------------------------------------------------------------- the predictor
class Orienter:
    """A 4-rotation RotNet answering "which way is up?" for images of any size.

    ``model`` is used as it is: on its own device, in eval mode only during a
    prediction (its train/eval flag is restored), never moved or updated.
    ``mean``/``std`` are the training data's normalisation, ``size`` its image size.
    With ``tta=True`` the softmax is averaged over the 4 rotated copies of each
    view, each read back into the same hypothesis:
    ``p(turn=k) = mean_j p_model(rotate(x, j))[(k + j) % 4]``.
    """

    def __init__(self, model: torch.nn.Module, mean, std, size: int = 32, tta: bool = False, name: str = ""):
        config = getattr(model, "config", {}) or {}
        if config.get("num_classes", 4) != 4:
            raise ValueError(f"the model predicts {config['num_classes']} classes; orientation needs a RotNet trained "
                             "on the 4 rotations (0/90/180/270)")
        self.model, self.size, self.tta = model, int(size), tta
        self.channels = int(config.get("in_channels", len(mean)))
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(self.mean) != self.channels:
            raise ValueError(f"{len(self.mean)} mean values for a model with {self.channels} input channels")
        self.name = name or getattr(model, "cache_key", type(model).__name__)

    def __repr__(self) -> str:
        return f"Orienter({self.name}, input {self.channels}x{self.size}x{self.size}, tta={self.tta})"

    def normalize(self, views: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=views.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=views.device).view(1, -1, 1, 1)
        return (views.float() / 255.0 - mean) / std

    @torch.no_grad()
    def probabilities(self, views: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Softmax over the 4 turns, (N, 4) on the CPU, for uint8 views (N, C, size, size) from :func:`model_view`."""
        params = next(self.model.parameters(), None)
        device = params.device if params is not None else torch.device("cpu")
        was_training = self.model.training
        self.model.eval()
        try:
            out = []
            for start in range(0, len(views), batch_size):
                x = self.normalize(views[start:start + batch_size].to(device))
                if self.tta:
                    p = sum(torch.roll(torch.softmax(self.model(rotate(x, j)).float(), 1), -j, dims=1) for j in range(4)) / 4
                else:
                    p = torch.softmax(self.model(x).float(), 1)
                out.append(p.cpu())
            return torch.cat(out) if out else torch.zeros(0, 4)
        finally:
            self.model.train(was_training)

    def predict(self, image: torch.Tensor) -> tuple[int, float, torch.Tensor]:
        """(turn in degrees ccw, confidence, probabilities) for one decoded image (C, H, W) of any size."""
        p = self.probabilities(model_view(image, self.size, self.channels).unsqueeze(0))[0]
        k = int(p.argmax())
        return TURNS[k], float(p[k]), p

    # -------------------------------------------------------- construction
    @classmethod
    def from_profile(cls, profile=None, tta: bool = False, seed: int = 0, train: bool = True,
                     log=print) -> "Orienter":
        """The profile's cached 4-rotation RotNet (``experiments.train_rotnet``, notebook 2's model).

        If it is not cached it is trained first, and this says so (``train=False``: raise instead).
        """
        from . import experiments as E
        from .profiles import get_profile
        profile = profile or get_profile()
        path = cached_rotnet_path(profile, seed=seed)
        if not path.exists():
            n = len(E.load_split(profile, "train"))
            what = (f"the {profile.name} profile's RotNet (seed {seed}, {profile.dataset}) is neither shipped nor in the cache ({path})")
            if not train:
                raise FileNotFoundError(f"{what}; train it first: run notebook 2, or `python -m rotlib train "
                                        f"--profile {profile.name} --seed {seed}`")
            spec = E.rotnet_spec(profile, seed=seed)
            how = "fine-tuning the shipped RotNet for" if "start" in spec.config else "training it now,"
            log(f"[orient] {what}: {how} {spec.config['train']['epochs']} epochs on {n:,} images x 4 rotations. "
                "That takes minutes on a laptop CPU (seconds on a GPU), once: later runs load it. "
                "Pass --model PATH to use another RotNet.")
        model = E.train_rotnet(profile, seed=seed)
        data = E.load_split(profile, "train")
        return cls(model, data.mean, data.std, size=data.shape[-1], tta=tta, name=model.cache_key)

    @classmethod
    def from_file(cls, path, tta: bool = False, size: int | None = None, device: str | None = None) -> "Orienter":
        """A RotNet saved by rotlib's cache (``cache/rotnet-*.pt``): weights, architecture and training config."""
        from .models import NetworkInNetwork
        from .train import load_weights, pick_device
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist; pass a cache/rotnet-*.pt file, or leave "
                                    "--model out to use the profile's RotNet")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path} is not a model saved by rotlib's cache ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:100]})") from None
        arch = state.get("arch") or {} if isinstance(state, dict) else {}
        config = state.get("config") or {} if isinstance(state, dict) else {}
        if not isinstance(state, dict) or "model" not in state or arch.get("class") != "NetworkInNetwork":
            raise ValueError(f"{path} is not a NetworkInNetwork saved by rotlib's cache (expected keys 'model' and "
                             "'arch', as in cache/rotnet-*.pt)")
        if config.get("kind", "rotnet") != "rotnet" or config.get("rotations", "4") != "4":
            raise ValueError(f"{path} is a {config.get('kind')} model with rotations {config.get('rotations')!r}; "
                             "orientation needs a RotNet trained on the 4 rotations (rotations='4')")
        model = NetworkInNetwork(**arch["config"])
        load_weights(model, state, source=str(path))
        model.eval()
        if device:
            model.to(pick_device(device))
        dataset = config.get("dataset", "cifar10")
        if dataset in _DATASET_STATS:
            mean, std, default_size = _DATASET_STATS[dataset]
        elif str(dataset).startswith("folder:"):
            train = D.load_dataset(dataset, "train")        # the statistics the model was trained with
            mean, std, default_size = train.mean, train.std, train.shape[-1]
        else:
            raise ValueError(f"{path} was trained on an unknown dataset {dataset!r}")
        return cls(model, mean, std, size=size or default_size, tta=tta, name=path.stem)


def cached_rotnet_path(profile, rotations: str = "4", seed: int = 0) -> Path:
    """The file ``experiments.train_rotnet(profile)`` loads: the shipped model in ``models/`` when there is one,
    else its cache entry (which may not exist yet). Found without training anything."""
    from . import experiments as E
    from . import shipped
    from .cache import cache_dir
    stem = E.rotnet_spec(profile, rotations, seed=seed).stem
    return shipped.find(stem) or cache_dir() / f"{stem}.pt"


# ---------------------------------------------------------------- one image, a folder
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
                                              "exif_orientation", "size", "message", "written")}


def orient_image(orienter: Orienter, source, name: str | None = None,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE, keep_image: bool = False) -> OrientResult:
    """Predict one image (a path or raw bytes); never raises for bad files: they come back as ``skipped``."""
    name = name or (str(source) if not isinstance(source, (bytes, bytearray, memoryview)) else "upload")
    try:
        dec = decode(source)
    except UnreadableImage as err:
        suffix = Path(name).suffix.lower()
        kind = "corrupt or unsupported image" if suffix in D.IMAGE_EXTENSIONS else "not an image"
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
    import numpy as np
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
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    try:
        pil.save(tmp, format=fmt, **options)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
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
                 overwrite: bool = False, recursive: bool = False, on_result=None) -> list[OrientResult]:
    """Predict every file under ``path``; with ``apply_to``, write corrected copies of the rotated ones there.

    Upright, unsure and unreadable files are reported and not written. An
    existing file in ``apply_to`` is kept unless ``overwrite``; a destination
    that is an original is never written. ``on_result(result)`` is called as
    each file is done (the CLI prints its table row).
    """
    root = Path(path).expanduser()
    out = check_output(root, apply_to) if apply_to is not None else None
    files = list_files(root, recursive, exclude=out if root.is_dir() else None)
    base = root if root.is_dir() else root.parent
    results = []
    for f in files:
        res = orient_image(orienter, f, str(f.relative_to(base)), min_confidence, keep_image=out is not None)
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
                    res.message = f"not written: {err}"
        res.decoded = None                      # one image in memory at a time
        results.append(res)
        if on_result is not None:
            on_result(res)
    return results


def table_header(width: int = 28) -> str:
    return f"{'file':{width}s} {'exif':>4s} {'size':>11s} {'turned':>8s} {'conf.':>6s}  action"


def table_row(res: OrientResult, width: int = 28, applying: bool = False) -> str:
    """One line of the CLI table: file, EXIF tag honoured, size, predicted turn, confidence, what was done."""
    name = res.path if len(res.path) <= width else "…" + res.path[-(width - 1):]
    if res.status == "skipped":
        return f"{name:{width}s} {'':>4s} {'':>11s} {'':>8s} {'':>6s}  skipped: {res.message}"
    size = f"{res.size[0]}x{res.size[1]}"
    exif = str(res.exif_orientation) if res.exif_orientation not in (None, 1) else ""
    if res.status == "upright":
        action = "upright"
    elif res.status == "unsure":
        action = f"unsure ({describe_fix(res.turn)}?), left alone"
    elif res.written:
        action = f"{describe_fix(res.turn)} -> {res.written}"
    else:
        action = describe_fix(res.turn) + ("" if applying else " (--apply OUT writes the fix)")
    extra = [m for m in res.message.split("; ") if m and "left alone" not in m]
    action += "".join(f"; {m}" for m in extra)
    return f"{name:{width}s} {exif:>4s} {size:>11s} {describe_turn(res.turn):>8s} {res.confidence:6.2f}  {action}"


def summary_line(results: list[OrientResult]) -> str:
    count = {s: sum(r.status == s for r in results) for s in ("upright", "rotated", "unsure", "skipped")}
    written = sum(r.written is not None for r in results)
    return (f"{len(results)} files: {count['upright']} upright, {count['rotated']} rotated ({written} corrected copies "
            f"written), {count['unsure']} unsure (left alone), {count['skipped']} skipped")


# ---------------------------------------------------------------- evaluation on images rotated by known turns
@dataclass
class Evaluation:
    """Predictions for every image in every turn: ``true``/``pred`` turn indices (0-3), ``index`` of the source image."""

    true: torch.Tensor
    pred: torch.Tensor
    confidence: torch.Tensor
    probabilities: torch.Tensor
    index: torch.Tensor

    @property
    def correct(self) -> torch.Tensor:
        return self.pred == self.true

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct.float().mean().item()

    def per_turn(self) -> dict[int, float]:
        """Accuracy (%) for each true turn, keyed by degrees."""
        return {TURNS[k]: 100.0 * self.correct[self.true == k].float().mean().item() for k in range(4)}

    def confusion(self) -> torch.Tensor:
        """Counts, rows true turn, columns predicted turn."""
        return torch.bincount(self.true * 4 + self.pred, minlength=16).view(4, 4)

    def coverage(self, thresholds=None) -> list[dict]:
        """For each confidence threshold: the share of images acted upon and the accuracy on them (%)."""
        thresholds = [0.25 + 0.05 * i for i in range(15)] + [0.97, 0.99] if thresholds is None else thresholds
        rows = []
        for t in thresholds:
            keep = self.confidence >= t
            n = int(keep.sum())
            rows.append({"threshold": float(t), "coverage": 100.0 * n / len(keep),
                         "accuracy": 100.0 * self.correct[keep].float().mean().item() if n else float("nan"),
                         "n": n})
        return rows

    def threshold_for(self, accuracy: float) -> dict | None:
        """The lowest threshold (0.01 steps) whose accepted images reach ``accuracy`` (%), with its coverage; None if none does."""
        for row in self.coverage([i / 100 for i in range(25, 100)]):
            if row["n"] and row["accuracy"] >= accuracy:
                return row
        return None

    def per_class(self, labels: torch.Tensor, classes: list[str]) -> dict[str, float]:
        """Accuracy (%) per object class of the source images."""
        cls = labels[self.index]
        return {c: 100.0 * self.correct[cls == i].float().mean().item() for i, c in enumerate(classes)
                if (cls == i).any()}

    def confident_mistakes(self, n: int = 12, distinct: bool = True) -> list[int]:
        """Positions (into ``true``/``pred``...) of the ``n`` most confident wrong predictions;
        ``distinct``: at most one turn of each source image."""
        wrong = torch.nonzero(~self.correct).flatten()
        picked, seen = [], set()
        for i in wrong[torch.argsort(self.confidence[wrong], descending=True)].tolist():
            if distinct and int(self.index[i]) in seen:
                continue
            seen.add(int(self.index[i]))
            picked.append(i)
            if len(picked) == n:
                break
        return picked

    def summary(self) -> dict:
        return {"accuracy": self.accuracy, "per_turn": self.per_turn(), "confusion": self.confusion().tolist(),
                "n": len(self.true), "mean_confidence": self.confidence.mean().item()}


def rotated_copies(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every image in every turn, turn-major: (rotated (4N, C, H, W), turn index (4N,), source index (4N,))."""
    n = len(images)
    rotated = torch.cat([rotate(images, k) for k in range(4)])
    return rotated, torch.arange(4).repeat_interleave(n), torch.arange(n).repeat(4)


def evaluate(orienter: Orienter, images: torch.Tensor, batch_size: int = 500) -> Evaluation:
    """The tool on held-out uint8 images (N, C, H, W), square, each rotated by the 4 known turns."""
    rotated, true, index = rotated_copies(images)
    views = model_view(rotated, orienter.size, orienter.channels) if images.shape[1] != orienter.channels or \
        images.shape[-1] != orienter.size else rotated
    p = orienter.probabilities(views, batch_size)
    conf, pred = p.max(1)
    return Evaluation(true, pred, conf, p, index)


def measure(profile, threshold: float = DEFAULT_MIN_CONFIDENCE, notebook: str = "08", record: bool = True) -> dict:
    """Notebook 8's numbers: the tool on the profile's test images x 4 known turns, one RotNet per seed.

    Only loads cached RotNets (notebook 2 trains them). Per seed: accuracy,
    accuracy per turn, accuracy with test-time augmentation, and at
    ``threshold`` the coverage (share of images acted upon) and the accuracy on
    those, with and without test-time augmentation. With ``record`` each quantity goes to ``results/<profile>.json``
    (:func:`rotlib.results.record`). Returns ``{"entries": {name: entry},
    "evaluations": [...], "tta": [...], "orienters": [...]}`` (lists in seed order).
    """
    from . import experiments as E
    from . import results as R
    test = E.load_split(profile, "test")
    orienters = [Orienter.from_profile(profile, seed=s, train=False) for s in profile.seeds]
    evals = [evaluate(o, test.images) for o in orienters]
    tta = [evaluate(Orienter(o.model, o.mean, o.std, o.size, tta=True, name=o.name), test.images) for o in orienters]
    at, at_tta = [e.coverage([threshold])[0] for e in evals], [e.coverage([threshold])[0] for e in tta]
    per_turn = [e.per_turn() for e in evals]
    values = {"orient.accuracy": [e.accuracy for e in evals],
              **{f"orient.accuracy.turn{t}": [p[t] for p in per_turn] for t in TURNS},
              "orient.accuracy.tta": [e.accuracy for e in tta],
              f"orient.threshold{threshold:g}.coverage": [r["coverage"] for r in at],
              f"orient.threshold{threshold:g}.accuracy": [r["accuracy"] for r in at],
              f"orient.threshold{threshold:g}.coverage.tta": [r["coverage"] for r in at_tta],
              f"orient.threshold{threshold:g}.accuracy.tta": [r["accuracy"] for r in at_tta]}
    entries = {name: R.record(name, v, profile, notebook) if record else R.Entry({"name": name, **R.summarize(v)})
               for name, v in values.items()}
    return {"entries": entries, "evaluations": evals, "tta": tta, "orienters": orienters}


# ---------------------------------------------------------------- figures and the upload widget
def _display(image: torch.Tensor, max_side: int = 512):
    """A (C, H, W) image as an (H, W, C) array in [0, 1] for imshow, downscaled for display."""
    from torchvision.transforms.v2.functional import resize
    image = to_rgb8(image)
    h, w = image.shape[-2:]
    if max(h, w) > max_side:
        image = resize(image, [max(1, round(h * max_side / max(h, w))), max(1, round(w * max_side / max(h, w)))],
                       antialias=True)
    return (image.permute(1, 2, 0).float() / 255).numpy()


def show_result(res: OrientResult, orienter: Orienter, fig=None):
    """Four panels: the picture as uploaded (EXIF applied), what the model sees, the probabilities, the corrected picture."""
    import matplotlib.pyplot as plt
    from .plots import to_display
    if res.status == "skipped":
        fig = fig or plt.figure(figsize=(6, 0.8))
        fig.text(0.02, 0.5, f"{res.path}: skipped, {res.message}", fontsize=10, va="center")
        return fig
    fig = fig or plt.figure(figsize=(11, 3))
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1.2, 1]})
    exif = f", EXIF {res.exif_orientation} applied" if res.exif_orientation not in (None, 1) else ""
    axes[0].imshow(_display(res.decoded.image))
    axes[0].set_title(f"{Path(res.path).name}\n{res.size[0]}x{res.size[1]}{exif}", fontsize=8)
    view = model_view(res.decoded.image, orienter.size, orienter.channels)
    axes[1].imshow(to_display(view), cmap="gray", interpolation="nearest")
    axes[1].set_title(f"what the RotNet sees\n({orienter.size}x{orienter.size} centre crop)", fontsize=8)
    colors = ["tab:green" if TURNS[i] == res.turn else "tab:gray" for i in range(4)]
    axes[2].bar([describe_turn(t) for t in TURNS], res.probabilities, color=colors)
    axes[2].set_ylim(0, 1)
    axes[2].set_title("p(picture is turned by ...)", fontsize=8)
    axes[2].tick_params(labelsize=8)
    axes[3].imshow(_display(res.corrected()))
    verdict = {"upright": "already upright", "rotated": describe_fix(res.turn),
               "unsure": "unsure, left alone"}[res.status]
    axes[3].set_title(f"corrected: {verdict}\nconfidence {res.confidence:.2f}", fontsize=8)
    for ax in (axes[0], axes[1], axes[3]):
        ax.axis("off")
    fig.tight_layout()
    return fig


def coverage_plot(evaluation: Evaluation, ax=None, mark: float | None = DEFAULT_MIN_CONFIDENCE, label: str | None = None,
                  color: str = "tab:blue"):
    """Accuracy on the images acted upon vs the share of images acted upon, as the threshold rises from 0.25 to 0.99.

    ``mark`` puts a dot at one threshold (the command line's default); call it again on the same ``ax``
    to compare predictors.
    """
    import matplotlib.pyplot as plt
    rows = evaluation.coverage([i / 100 for i in range(25, 100)])
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.8))
    cov = [r["coverage"] for r in rows if r["n"]]
    acc = [r["accuracy"] for r in rows if r["n"]]
    ax.plot(cov, acc, "-", color=color, label=label)
    if mark is not None:
        r = evaluation.coverage([mark])[0]
        ax.plot([r["coverage"]], [r["accuracy"]], "o", color=color,
                label=f"threshold {mark:.2f}: {r['coverage']:.1f}% acted on, {r['accuracy']:.1f}% right")
    if label is not None or mark is not None:
        ax.legend(fontsize=8, loc="lower left")
    ax.set_xlabel("coverage: images acted upon (%)")
    ax.set_ylabel("accuracy on those (%)")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    return ax


class OrientationWidget:
    """Upload a photo (ipywidgets FileUpload), see the RotNet's answer and the corrected picture.

    The logic is in :meth:`predict_bytes` and :meth:`update` (testable without
    a browser); ``.ui`` is the box to display.
    """

    def __init__(self, orienter: Orienter, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
        import ipywidgets as W
        self.orienter, self.min_confidence = orienter, min_confidence
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="Upload a photo")
        self.out = W.Output()
        self.upload.observe(self._on_upload, names="value")
        self.ui = W.VBox([W.HTML("Upload a photo (JPEG, PNG, WebP, GIF, BMP, TIFF); nothing leaves this kernel."),
                          self.upload, self.out])
        self.last: OrientResult | None = None

    def _on_upload(self, change) -> None:
        files = change.get("new") or ()
        if files:
            f = files[-1]
            self.update(bytes(f["content"]), f.get("name", "upload"))

    def predict_bytes(self, data: bytes, name: str = "upload") -> OrientResult:
        """The prediction for an uploaded file's bytes (the decoded image kept for display)."""
        self.last = orient_image(self.orienter, bytes(data), name, self.min_confidence, keep_image=True)
        return self.last

    def update(self, data: bytes, name: str = "upload") -> OrientResult:
        """Predict and draw the result into the widget's output area."""
        import matplotlib.pyplot as plt
        res = self.predict_bytes(data, name)
        with self.out:
            self.out.clear_output(wait=True)
            show_result(res, self.orienter)
            plt.show()
        return res
