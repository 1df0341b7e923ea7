"""First-layer filters (paper Fig. 4): what they look like and numbers for "oriented, varied, colour".

The paper's claim (Fig. 4, AlexNet on ImageNet): *"the filters learned by
the self-supervised task are mostly oriented edge filters on various
frequencies and, remarkably, they seem to have more variety than those
learned on the supervised task."* We measure it from each filter's 2D
spectrum (zero-padded FFT of the filter with its per-channel mean removed,
power averaged over the input channels), per filter:

- ``orientedness`` (0-1): how concentrated the filter's energy is along one
  orientation (the length of the energy-weighted mean of the doubled
  spectral angles): ~0 for a blob or a centre-surround filter, 0.5-0.9 for a
  5x5 edge or grating. White noise of the same shape scores low but not 0
  (a 5x5 patch of noise is a little oriented by chance);
- ``orientation`` (radians in [0, pi)): the dominant direction of the
  filter's wave vector, perpendicular to its edges;
- ``peak_frequency`` (cycles/pixel): where the filter's spectrum peaks (its scale);
- ``smoothness`` (0-1): share of the energy below 0.25 cycles/pixel (half
  the Nyquist frequency); white noise scores ~0.15, smooth filters more;
- ``colour_share`` (0-1): share of the filter's energy in colour
  (channel-difference) directions rather than luminance (the channel
  mean): 0 for a filter that weighs R, G and B alike, 1 for an opponent
  filter such as R - G; white noise in RGB scores 2/3 on average.

and over the bank of filters (:func:`filter_stats`):

- ``oriented_share``: the share of *oriented* filters, orientedness >=
  :data:`ORIENTED`;
- ``orientation_entropy`` (bits): how evenly the orientations of the
  oriented filters only cover the half circle (8 bins centred on 0°,
  22.5°, ..., so horizontal and vertical each have one; at most 3 bits);
- ``oriented_variety``: the variety statistic, ``oriented_share x
  orientation_entropy / log2(bins)``: 1 when every filter is oriented and
  their orientations cover the half circle evenly, 0 when no filter is
  oriented or all share one orientation;
- ``entropy_all`` (bits): the naive statistic it replaces, the entropy of
  every filter's dominant orientation. Noise has a "dominant orientation"
  too, uniformly distributed, so random filters score near the maximum:
  it mistakes noise for variety.
"""
from __future__ import annotations

import math

import torch

from . import results as R

ORIENTED = 0.4
"""Orientedness from which a filter counts as oriented. For 5x5 filters, 3-channel white noise (a
random initialisation) almost never reaches it (99th percentile 0.28) and 1-channel noise rarely
(3.5% of filters), while 5x5 Gabor and edge filters with an envelope of at least 1.5 pixels score
0.5-0.9 (every frequency from 0.15 to 0.35 cycles/pixel, even and odd phase)."""

BINS = 8


def first_layer_weight(model) -> torch.Tensor:
    """The (out, in, k, k) weight of a NetworkInNetwork's first conv layer."""
    return model.blocks[0][0][0].weight.detach().float().cpu()


def _spectrum(weight: torch.Tensor, pad: int):
    """Power (out, pad, pad) of the zero-padded, mean-free filters averaged over channels, and the grid's
    frequency radius (cycles/pixel) and orientation (radians in [0, pi))."""
    w = weight.detach().float().cpu()
    w = w - w.mean(dim=(-2, -1), keepdim=True)      # drop DC: a constant offset carries no orientation
    power = torch.fft.fft2(w, s=(pad, pad)).abs().pow(2).mean(dim=1)
    f = torch.fft.fftfreq(pad)
    fy, fx = torch.meshgrid(f, f, indexing="ij")
    return power, torch.sqrt(fx ** 2 + fy ** 2), torch.atan2(fy, fx) % math.pi


def colour_share(weight: torch.Tensor) -> torch.Tensor:
    """Share (0-1) of each filter's energy (out, C, k, k) -> (out,) outside the luminance direction.

    The luminance part repeats the channel mean in every channel; the rest (channel differences) is colour.
    The two parts are orthogonal, so their energies add up to the filter's. 0 for a one-channel filter."""
    w = weight.detach().float().cpu()
    lum = w.mean(dim=1, keepdim=True).expand_as(w)
    total = w.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-12)
    return (w - lum).pow(2).sum(dim=(1, 2, 3)) / total


def filter_properties(weight: torch.Tensor, pad: int = 32) -> dict[str, torch.Tensor]:
    """Per-filter ``orientedness``, ``orientation``, ``peak_frequency``, ``smoothness`` and ``colour_share``
    (each an (out,) tensor) of an (out, in, k, k) weight; see the module docstring."""
    power, radius, theta = _spectrum(weight, pad)
    pw = power * (radius > 0)
    total = pw.sum(dim=(-2, -1)).clamp_min(1e-12)
    c = (pw * torch.cos(2 * theta)).sum(dim=(-2, -1)) / total
    s = (pw * torch.sin(2 * theta)).sum(dim=(-2, -1)) / total
    return {
        "orientedness": torch.sqrt(c ** 2 + s ** 2),
        "orientation": (torch.atan2(s, c) % (2 * math.pi)) / 2,
        "peak_frequency": radius.flatten()[pw.flatten(1).argmax(dim=1)],
        "smoothness": (pw * (radius < 0.25)).sum(dim=(-2, -1)) / total,
        "colour_share": colour_share(weight),
    }


def orientation_entropy(orientations: torch.Tensor, bins: int = BINS) -> float:
    """Entropy (bits) of a histogram of orientations in [0, pi); 0 for fewer than 2 orientations.

    Bins are centred on 0, pi/bins, 2 pi/bins, ...: orientation wraps around (0 and pi are the same
    orientation), so the first bin takes both ends of the interval, e.g. [-pi/16, pi/16) for 8 bins."""
    if len(orientations) < 2:
        return 0.0
    shifted = (orientations.float() + math.pi / (2 * bins)) % math.pi
    hist = torch.histc(shifted, bins=bins, min=0, max=math.pi) / len(orientations)
    hist = hist[hist > 0]
    return float(-(hist * hist.log2()).sum())


def filter_stats(weight: torch.Tensor, threshold: float = ORIENTED, bins: int = BINS, pad: int = 32) -> dict[str, float]:
    """Statistics of a bank of filters (out, in, k, k), see the module docstring.

    Shares (``oriented_share``, ``oriented_variety``, ``smoothness``, ``colour_share``) are in [0, 1],
    entropies (``orientation_entropy`` over the oriented filters, ``entropy_all`` over all) in bits.
    Only filters with orientedness >= ``threshold`` contribute orientations to the variety, and the
    variety is scaled by their share, so noise (few oriented filters) and a repeated filter (one
    orientation) both score low, and a bank of oriented filters at many orientations scores high.
    """
    props = filter_properties(weight, pad)
    oriented = props["orientedness"] >= threshold
    share = oriented.float().mean().item()
    entropy = orientation_entropy(props["orientation"][oriented], bins)
    return {"oriented_share": share, "orientation_entropy": entropy,
            "oriented_variety": share * entropy / math.log2(bins),
            "smoothness": props["smoothness"].mean().item(), "colour_share": props["colour_share"].mean().item(),
            "entropy_all": orientation_entropy(props["orientation"], bins)}


# ---------------------------------------------------------------- for display
def upsample(weight: torch.Tensor, scale: int = 8) -> torch.Tensor:
    """Each filter pixel repeated ``scale`` x ``scale`` times (nearest neighbour): 5x5 -> 40x40 at scale 8."""
    return weight.detach().float().cpu().repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


def log_power_spectrum(weight: torch.Tensor, pad: int = 32) -> torch.Tensor:
    """(out, pad, pad) log10 power of each filter's zero-padded FFT, summed over channels, zero frequency
    in the centre; each filter is first scaled to unit energy, so the spectra share one scale."""
    w = weight.detach().float().cpu()
    w = w / w.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    power = torch.fft.fft2(w, s=(pad, pad)).abs().pow(2).sum(dim=1)
    return torch.fft.fftshift(power, dim=(-2, -1)).clamp_min(1e-12).log10()


# ---------------------------------------------------------------- recorded measurements (notebook 5)
PERCENT = ("oriented_share", "oriented_variety", "smoothness", "colour_share")


def measure_filters(nets: dict, profile, inits: dict | None = None, notebook: str = "05") -> dict:
    """:func:`filter_stats` of every network's first layer, every seed, recorded as ``filters.<kind>.<stat>``
    (shares in %, entropies in bits), with RotNet minus each other kind, seed by seed, as
    ``gap.filters.rotnet_minus_<kind>.<stat>``.

    ``nets``: ``{kind: [one model per seed]}``, seeds in the same order. ``inits`` (same shape, optional):
    each trained network's initial weights (an untrained network built from the same seed), to record
    ``filters.<kind>.init_similarity``: the cosine between the trained and the initial weights of the whole
    layer, in % (100: only rescaled, 0: nothing of the initial noise left). Cosine, not a distance, because
    a conv followed by batch norm can rescale its weights freely.
    """
    unit = {k: "%" for k in (*PERCENT, "init_similarity")} | {"orientation_entropy": "bits", "entropy_all": "bits"}
    return R.record_kinds(filters_per_seed(nets, inits), "filters", profile, notebook, unit=unit)


def filters_per_seed(nets: dict, inits: dict | None = None) -> dict:
    """``{kind: [one {stat: value} per seed]}`` of :func:`measure_filters`: measured, not recorded."""
    per_seed = {}
    for kind, models in nets.items():
        runs = []
        for i, model in enumerate(models):
            w = first_layer_weight(model)
            stats = filter_stats(w)
            run = {k: 100 * v if k in PERCENT else v for k, v in stats.items()}
            if inits and kind in inits:
                w0 = first_layer_weight(inits[kind][i])
                run["init_similarity"] = 100 * torch.nn.functional.cosine_similarity(w.flatten(), w0.flatten(),
                                                                                     dim=0).item()
            runs.append(run)
        per_seed[kind] = runs
    return per_seed
