"""Figures for the notebooks: image grids, filter grids, curves, confusion matrices, result bars."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def to_display(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 or float tensor -> (H, W) or (H, W, 3) array in [0, 1] for imshow."""
    x = image.detach().float().cpu()
    if image.dtype == torch.uint8:
        x = x / 255.0
    else:
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    x = x.numpy()
    return x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))


def image_grid(images, titles=None, ncols: int | None = None, size: float = 1.6, suptitle: str | None = None,
               cmap: str = "gray"):
    """Show a list/batch of (C, H, W) images in a grid; returns the figure."""
    images = list(images)
    ncols = ncols or len(images)
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(to_display(img), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def filter_grid(weight: torch.Tensor, ax=None, ncols: int = 8, title: str | None = None):
    """First-layer filters (out, in, k, k) as a grid, each filter scaled to [0, 1] on its own (Fig. 4)."""
    w = weight.detach().float().cpu()
    lo = w.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = w.flatten(1).max(1).values.view(-1, 1, 1, 1)
    w = (w - lo) / (hi - lo).clamp_min(1e-12)
    n, c, k, _ = w.shape
    nrows = int(np.ceil(n / ncols))
    canvas = np.ones((nrows * (k + 1) + 1, ncols * (k + 1) + 1, 3))
    for i in range(n):
        r, col = divmod(i, ncols)
        f = w[i].permute(1, 2, 0).numpy()
        canvas[1 + r * (k + 1): 1 + r * (k + 1) + k, 1 + col * (k + 1): 1 + col * (k + 1) + k] = f if c == 3 else f[..., :1]
    if ax is None:
        _, ax = plt.subplots(figsize=(ncols * 0.45, nrows * 0.45))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def training_curves(histories: dict, key: str = "step_loss", smooth: int = 20, ax=None, ylabel: str | None = None):
    """Per-step curves (moving average over ``smooth`` steps) of several training histories."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, h in histories.items():
        y = np.asarray(h[key], dtype=float)
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        ax.plot(np.arange(len(y)) + (smooth if len(h[key]) >= smooth else 1), y, label=name)
    ax.set_xlabel("gradient step")
    ax.set_ylabel(ylabel or key)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def confusion_heatmap(matrix: torch.Tensor, labels, ax=None, title: str | None = None):
    """Row-normalised confusion matrix (percent) as a seaborn heatmap."""
    import seaborn as sns
    m = matrix.double()
    m = 100.0 * m / m.sum(1, keepdim=True).clamp_min(1)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6))
    sns.heatmap(m.numpy(), annot=True, fmt=".1f", cmap="Blues", xticklabels=labels, yticklabels=labels, ax=ax,
                vmin=0, vmax=100, cbar_kws={"label": "% of true rotation"})
    ax.set_xlabel("predicted rotation")
    ax.set_ylabel("true rotation")
    if title:
        ax.set_title(title)
    return ax


def grouped_bars(table: dict[str, dict[str, float]], ax=None, ylabel: str = "test accuracy (%)", ylim=None,
                 title: str | None = None):
    """Bars for {series: {group: value}}, groups on the x axis; missing values are left out."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    series = list(table)
    groups = list(dict.fromkeys(g for s in series for g in table[s]))
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j, g in enumerate(groups) if table[s].get(g) is not None]
        ys = [table[s][g] for g in groups if table[s].get(g) is not None]
        bars = ax.bar(xs, ys, width, label=s)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def overlay(image: torch.Tensor, heat: torch.Tensor, ax, alpha: float = 0.5, title: str | None = None):
    """An image with a [0, 1] attention map drawn over it (jet colour map)."""
    ax.imshow(to_display(image), cmap="gray", interpolation="nearest")
    ax.imshow(heat.detach().cpu().numpy(), cmap="jet", alpha=alpha, vmin=0, vmax=1, interpolation="bilinear")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    return ax
