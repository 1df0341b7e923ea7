"""Attention maps of conv layers (paper Sec. 3.1, Fig. 3 and Fig. 6).

The paper visualises where a network "looks" by the spatial attention map
of a conv layer: raise the magnitude of every activation to a power p and
sum over channels, A(i, j) = sum_c |a_c(i, j)|^p (Zagoruyko & Komodakis
2017). Larger p puts more weight on the most active locations. Because the
pretext task asks "which way is up?", a RotNet should attend to the object
and move its attention with the object when the image rotates (Fig. 6).

Two measurements turn the pictures into numbers:

- the **equivariance score** (:func:`equivariance_scores`): the map of a
  rotated image, rotated back, Pearson-correlated with the map of the
  original image; 1 = the attention moves exactly with the image;
- the **border share** (:func:`border_share`): the share of a map's mass on
  its outer ring of cells, against the share a uniform map puts there.
  Every conv layer pads its input with zeros; in normalised image space zero
  is the dataset's mean colour, so the network sees its input inside a
  constant grey frame, and the frame's edge makes the outer ring light up
  whatever the image shows (:func:`mean_image`, :func:`with_padding`).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .modes import evaluating
from . import results as R
from .rotations import rotate


def attention_map(features: torch.Tensor, p: float = 2) -> torch.Tensor:
    """(N, C, H, W) activations -> (N, H, W) map sum_c |a|^p, before any normalisation or upsampling."""
    if features.dim() != 4:
        raise ValueError(f"expected features of shape (N, C, H, W), got {tuple(features.shape)}")
    if p <= 0:
        raise ValueError(f"the power p must be positive (the paper uses 1, 2 and 4), got {p}")
    return features.float().abs().pow(p).sum(dim=1)


def normalize_maps(maps: torch.Tensor, size: int | None = None, mode: str = "bilinear",
                   flat_tol: float = 1e-4) -> torch.Tensor:
    """Scale each (H, W) map to [0, 1] and optionally upsample to ``size`` x ``size`` for overlays
    (``mode="nearest"`` keeps the map's real cells visible). A flat map (max - min within ``flat_tol``
    of its max, e.g. float rounding) becomes all zeros instead of its rounding noise stretched to [0, 1]."""
    if size is not None:
        kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
        maps = F.interpolate(maps.unsqueeze(1), size=(size, size), mode=mode, **kwargs).squeeze(1)
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    hi = maps.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    flat = span <= flat_tol * hi.abs()
    return torch.where(flat, torch.zeros_like(maps), (maps - lo) / span.clamp_min(1e-12))


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def block_features(model, images: torch.Tensor, blocks) -> dict[str, torch.Tensor]:
    """The listed blocks' activations (on the CPU) of a NetworkInNetwork for normalised images, one forward pass."""
    blocks = list(blocks)
    with evaluating(model):                   # the caller's model keeps its own train/eval modes
        out = model(images.float().to(_device(model)), out_feat_keys=blocks)
    return {b: f.float().cpu() for b, f in zip(blocks, out)}


@torch.no_grad()
def block_attention(model, images: torch.Tensor, block: str, p: float = 2) -> torch.Tensor:
    """Raw attention maps (N, H, W) of a NetworkInNetwork block for normalised images."""
    return attention_map(block_features(model, images, [block])[block], p)


def map_correlation(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pearson correlation between paired maps (N, H, W) -> (N,); ``mask`` (H, W) keeps only some cells."""
    if mask is not None:
        a, b = a[..., mask], b[..., mask]
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


@torch.no_grad()
def equivariance_scores(model, images: torch.Tensor, blocks, ps=(1, 2, 4), batch_size: int = 250,
                        interior: bool = False) -> dict[tuple, float]:
    """:func:`equivariance_score` of a NetworkInNetwork for every (block, p) at once, from one forward
    pass per rotation and batch of normalised ``images``.

    Returns ``{(block, p): mean correlation over the images and the 3 quarter turns}``. With
    ``interior=True`` it also holds ``(block, p, "interior")``: the same score over the cells inside the
    outer ring (:func:`ring_mask`) only, leaving out the border, where zero padding draws a frame that
    rotates into itself whatever the network does.
    """
    blocks = list(blocks)
    keys = [(b, p) for b in blocks for p in ps] + ([(b, p, "interior") for b in blocks for p in ps] if interior else [])
    sums = dict.fromkeys(keys, 0.0)
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        feats = [block_features(model, rotate(x, k), blocks) for k in range(4)]
        for b in blocks:
            inside = ~ring_mask(*feats[0][b].shape[-2:])
            for p in ps:
                base = attention_map(feats[0][b], p)
                for k in (1, 2, 3):
                    back = rotate(attention_map(feats[k][b], p), -k)
                    sums[(b, p)] += map_correlation(back, base).sum().item()
                    if interior:
                        sums[(b, p, "interior")] += map_correlation(back, base, inside).sum().item()
    return {key: s / (3 * len(images)) for key, s in sums.items()}


# ---------------------------------------------------------------- the border: zero padding's grey frame
def ring_width(h: int) -> int:
    """Cells in the outer ring of an h x h map: 1/8 of its side (the image's outer 4 pixels at 32x32), at least 1."""
    return max(1, h // 8)


def ring_mask(h: int, w: int | None = None, width: int | None = None) -> torch.Tensor:
    """Boolean (h, w) mask of the outer ring of cells (default width :func:`ring_width`)."""
    w = h if w is None else w
    width = ring_width(min(h, w)) if width is None else width
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[width:h - width, width:w - width] = False
    return mask


def uniform_border_share(h: int, w: int | None = None, width: int | None = None) -> float:
    """The ring's share of the cells: what :func:`border_share` gives for a flat map."""
    return ring_mask(h, w, width).float().mean().item()


def border_share(maps: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """Share of each map's total mass (N, H, W) -> (N,) that lies on the outer ring of cells.

    A flat map gives :func:`uniform_border_share`; so does an all-zero map (e.g. an untrained network,
    whose batch norms have zero running means, answers an all-zero image with all-zero activations)."""
    mask = ring_mask(*maps.shape[-2:], width=width)
    total = maps.flatten(-2).sum(-1)
    share = maps[..., mask].sum(-1) / total.clamp_min(1e-12)
    return torch.where(total > 0, share, torch.full_like(share, mask.float().mean().item()))


def mean_image(data, n: int = 1) -> torch.Tensor:
    """``n`` normalised images of the dataset's mean colour, everywhere: all zeros, the padding's own value.
    Whatever structure a network's map shows for them comes from the image border, not from content."""
    return torch.zeros(n, *data.shape)


def with_padding(model, mode: str = "replicate"):
    """A copy of ``model`` that never pads with zeros: its conv layers repeat the edge pixels (``"replicate"``,
    or ``"reflect"``) and its average pools average only real cells (``count_include_pad=False``).

    Only the padding changes, not a weight: whatever border effect disappears in the copy came from the zero
    frame. (The network was trained with zero padding, so the copy is for diagnosis, not for use.)"""
    twin = copy.deepcopy(model)
    for m in twin.modules():
        if isinstance(m, torch.nn.Conv2d) and any(p > 0 for p in m.padding):
            m.padding_mode = mode
        elif isinstance(m, torch.nn.AvgPool2d):
            m.count_include_pad = False
    return twin


# ---------------------------------------------------------------- recorded measurements (notebook 4)
KINDS = ("rotnet", "supervised", "random")


def measure_equivariance(nets: dict, images: torch.Tensor, profile, blocks, ps=(1, 2, 4), interior_p: float = 2,
                         notebook: str = "04") -> dict:
    """:func:`equivariance_per_seed`, recorded per block and p (:func:`rotlib.results.record_kinds`).

    ``nets``: ``{kind: [one model per seed]}`` with kinds among :data:`KINDS`, seeds in the same order.
    Keys of the result (and recorded names after ``equivariance.``): ``<kind>.<block>.p<p>``, the
    interior-only score ``<kind>.<block>.p<interior_p>.interior``, and ``gap.<kind>.<block>.p<p>`` for
    RotNet minus ``kind``, seed by seed. Scores are Pearson r x 100 (1.00 = 100).
    """
    return R.record_kinds(equivariance_per_seed(nets, images, blocks, ps, interior_p), "equivariance", profile,
                          notebook, unit="r x 100")


def equivariance_per_seed(nets: dict, images: torch.Tensor, blocks, ps=(1, 2, 4), interior_p: float = 2) -> dict:
    """``{kind: [one {"<block>.p<p>": score x 100, "<block>.p<interior_p>.interior": ...} per seed]}``: measured,
    not recorded."""
    per_seed = {}
    for kind, models in nets.items():
        runs = []
        for model in models:
            s = equivariance_scores(model, images, blocks, ps, interior=True)
            run = {f"{b}.p{p:g}": 100 * s[(b, p)] for b in blocks for p in ps}
            run.update({f"{b}.p{interior_p:g}.interior": 100 * s[(b, interior_p, "interior")] for b in blocks})
            runs.append(run)
        per_seed[kind] = runs
    return per_seed


def measure_border(nets: dict, images: torch.Tensor, data, profile, blocks, p: float = 2,
                   notebook: str = "04") -> dict:
    """The share of attention mass (%) on the outer ring of each block's map, every network and seed.

    Keys (recorded names after ``border.``): ``<kind>.<block>`` for the test ``images``,
    ``<kind>.<block>.mean_image`` for an image of the dataset's mean colour (:func:`mean_image`) and
    ``<kind>.<block>.no_zero_padding`` for the test images through :func:`with_padding`'s copy, and
    ``gap.<kind>.<key>`` for RotNet minus ``kind``, seed by seed.
    Compare with :func:`uniform_border_share` (43.75% for the default ring).
    """
    return R.record_kinds(border_per_seed(nets, images, data, blocks, p), "border", profile, notebook, unit="%")


def border_per_seed(nets: dict, images: torch.Tensor, data, blocks, p: float = 2) -> dict:
    """``{kind: [one {"<block>": %, "<block>.mean_image": %, "<block>.no_zero_padding": %} per seed]}``: measured,
    not recorded (see :func:`measure_border`)."""
    grey = mean_image(data)
    per_seed = {}
    for kind, models in nets.items():
        runs = []
        for model in models:
            real, flat = block_features(model, images, blocks), block_features(model, grey, blocks)
            unpadded = block_features(with_padding(model), images, blocks)
            run = {}
            for b in blocks:
                run[b] = 100 * border_share(attention_map(real[b], p)).mean().item()
                run[f"{b}.mean_image"] = 100 * border_share(attention_map(flat[b], p)).mean().item()
                run[f"{b}.no_zero_padding"] = 100 * border_share(attention_map(unpadded[b], p)).mean().item()
            runs.append(run)
        per_seed[kind] = runs
    return per_seed
