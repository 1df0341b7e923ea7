"""First-layer filters (paper Fig. 4) and a number for how varied they are.

The paper shows that RotNet's first-layer filters look like the supervised
network's: oriented edges and colour blobs at several frequencies, unlike
the noise of a random initialisation. We measure that from each filter's
2D spectrum (zero-padded FFT of the filter, averaged over input channels):
- ``orientedness``: how concentrated a filter's non-DC energy is in one
  orientation (0 = isotropic or noise-like, 1 = a single oriented grating);
- ``orientation_entropy``: how evenly the dominant orientations of the
  filters cover the half circle (bits; log2(8) = 3 at most with 8 bins);
- ``peak_frequency_spread``: standard deviation of the filters' dominant
  spatial frequencies (cycles/pixel), the spread of scales;
- ``smoothness``: share of spectral energy below 0.25 cycles/pixel: random
  filters are white noise (low), learned ones are smooth (high).
"""
from __future__ import annotations

import math

import torch


def first_layer_weight(model) -> torch.Tensor:
    """The (out, in, k, k) weight of a NetworkInNetwork's first conv layer."""
    return model.blocks[0][0][0].weight.detach().float().cpu()


def filter_spectrum_stats(weight: torch.Tensor, pad: int = 16, bins: int = 8) -> dict[str, float]:
    """Summary statistics of the filters' spectra (see the module docstring)."""
    w = weight.detach().float().cpu()
    w = w - w.mean(dim=(-2, -1), keepdim=True)      # drop DC: a constant offset carries no orientation
    power = torch.fft.fft2(w, s=(pad, pad)).abs().pow(2).mean(dim=1)           # (out, pad, pad)
    f = torch.fft.fftfreq(pad)
    fy, fx = torch.meshgrid(f, f, indexing="ij")
    radius = torch.sqrt(fx ** 2 + fy ** 2)
    theta = torch.atan2(fy, fx) % math.pi                                       # orientation in [0, pi)
    mask = radius > 0
    pw = power * mask
    total = pw.sum(dim=(-2, -1)).clamp_min(1e-12)
    # orientedness: length of the mean resultant of doubled angles, energy-weighted
    c = (pw * torch.cos(2 * theta)).sum(dim=(-2, -1)) / total
    s = (pw * torch.sin(2 * theta)).sum(dim=(-2, -1)) / total
    orientedness = torch.sqrt(c ** 2 + s ** 2)
    dominant = (torch.atan2(s, c) % (2 * math.pi)) / 2
    hist = torch.histc(dominant, bins=bins, min=0, max=math.pi) / len(dominant)
    entropy = -(hist[hist > 0] * hist[hist > 0].log2()).sum()
    peak = radius.flatten()[pw.flatten(1).argmax(dim=1)]
    smooth = (pw * (radius < 0.25)).sum(dim=(-2, -1)) / total
    return {"orientedness": orientedness.mean().item(), "orientation_entropy": entropy.item(),
            "peak_frequency_spread": peak.std().item(), "smoothness": smooth.mean().item()}
