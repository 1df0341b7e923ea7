"""``Orienter``: a 4-rotation RotNet answering "which way is up?" for an image of any size; where it comes from.

:func:`model_view` is what the RotNet sees of a picture; :func:`cached_rotnet_path` the file of a profile's RotNet.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import experiments as E
from ..checkpoints import load_weights
from ..data import (CIFAR10_MEAN, CIFAR10_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD, center_crop_square,
                    load_dataset, normalize, to_rgb8)
from ..devices import pick_device
from ..models import NetworkInNetwork
from ..modes import evaluating
from ..profiles import get_profile
from ..rotations import rotate
from . import packaged as P
from .turns import TURNS

# Statistics and input size of the datasets a cached RotNet may have been trained on (see rotlib.data).
_DATASET_STATS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD, 32), "cifar10-5k": (CIFAR10_MEAN, CIFAR10_STD, 32),
                  "fashion-mnist": (FASHION_MNIST_MEAN, FASHION_MNIST_STD, 28)}


def model_view(image: torch.Tensor, size: int, channels: int = 3) -> torch.Tensor:
    """What the RotNet sees: (..., C, H, W) -> (..., channels, size, size) uint8, centre-cropped square, resized.

    A 90-degree turn of a non-square picture changes its shape, so the model
    looks at the central square, downscaled with antialiasing.
    """
    from torchvision.transforms.v2.functional import resize, rgb_to_grayscale
    view = center_crop_square(to_rgb8(image))
    if view.shape[-1] != size:
        view = resize(view, [size, size], antialias=True)
    if channels == 1:
        view = rgb_to_grayscale(view)
    return view.contiguous()


class Orienter:
    """A 4-rotation RotNet answering "which way is up?" for images of any size.

    ``model`` is used as it is: on its own device, in eval mode only during a
    prediction (every module's own train/eval flag is restored), never moved or updated.
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
        self.name = name or type(model).__name__

    def __repr__(self) -> str:
        return f"Orienter({self.name}, input {self.channels}x{self.size}x{self.size}, tta={self.tta})"

    def normalize(self, views: torch.Tensor) -> torch.Tensor:
        """uint8 views -> the model's input: :func:`rotlib.data.normalize` with the training data's mean/std."""
        return normalize(views, self.mean, self.std)

    @torch.no_grad()
    def probabilities(self, views: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Softmax over the 4 turns, (N, 4) on the CPU, for uint8 views (N, C, size, size) from :func:`model_view`."""
        params = next(self.model.parameters(), None)
        device = params.device if params is not None else torch.device("cpu")
        out = []
        with evaluating(self.model):
            for start in range(0, len(views), batch_size):
                x = self.normalize(views[start:start + batch_size].to(device))
                if self.tta:
                    p = sum(torch.roll(torch.softmax(self.model(rotate(x, j)).float(), 1), -j, dims=1) for j in range(4)) / 4
                else:
                    p = torch.softmax(self.model(x).float(), 1)
                out.append(p.cpu())
        return torch.cat(out) if out else torch.zeros(0, 4)

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
        profile = profile or get_profile()
        spec = E.rotnet_spec(profile, seed=seed).resolved()     # what get() loads or trains
        path = spec.path
        if not path.exists():
            n = len(E.load_split(profile, "train"))
            what = (f"the {profile.name} profile's RotNet (seed {seed}, {profile.dataset}) is neither shipped nor in the cache ({path})")
            if not train:
                raise FileNotFoundError(f"{what}; train it first: run notebook 2, or `python -m rotlib train "
                                        f"--profile {profile.name} --seed {seed}`")
            how = "fine-tuning the shipped RotNet for" if "start" in spec.config else "training it now,"
            log(f"[orient] {what}: {how} {spec.config['train']['epochs']} epochs on {n:,} images x 4 rotations. "
                "That takes minutes on a laptop CPU (seconds on a GPU), once: later runs load it. "
                "Pass --model PATH to use another RotNet.")
        model = spec.get()
        data = E.load_split(profile, "train")
        return cls(model, data.mean, data.std, size=data.shape[-1], tta=tta, name=spec.stem)

    @classmethod
    def packaged(cls, tta: bool = False, device: str | None = None) -> "Orienter":
        """The RotNet installed with the package (:mod:`rotlib.orient.packaged`): no checkout, data or training
        needed; the same weights as the quick profile's shipped RotNet of seed 0."""
        orienter = cls.from_file(P.weights(), tta=tta, device=device)
        orienter.name = f"packaged {P.manifest()['of']}"
        return orienter

    @classmethod
    def from_file(cls, path, tta: bool = False, size: int | None = None, device: str | None = None) -> "Orienter":
        """A RotNet saved by rotlib's cache (``cache/rotnet-*.pt``): weights, architecture and training config."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist; pass a cache/rotnet-*.pt file, or leave "
                                    "--model out to use the RotNet installed with the package")
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
            train = load_dataset(dataset, "train")        # the statistics the model was trained with
            mean, std, default_size = train.mean, train.std, train.shape[-1]
        else:
            raise ValueError(f"{path} was trained on an unknown dataset {dataset!r}")
        return cls(model, mean, std, size=size or default_size, tta=tta, name=path.stem)


def cached_rotnet_path(profile, rotations: str = "4", seed: int = 0) -> Path:
    """The file ``experiments.train_rotnet(profile)`` loads: the shipped model in ``models/`` when there is one,
    else its cache entry (which may not exist yet). Found without training anything (the cache's own look-up,
    :func:`rotlib.cache.model_path`)."""
    return E.rotnet_spec(profile, rotations, seed=seed).path
