"""Figures for the notebooks: image grids, filter grids, curves, confusion matrices, result bars."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .filters import ORIENTED, log_power_spectrum, upsample


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


def training_curves(histories: dict, key: str = "step_loss", smooth: int = 20, ax=None, ylabel: str | None = None,
                    scale: float = 1.0):
    """Per-step curves (moving average over ``smooth`` steps) of several training histories, times ``scale``
    (100 for accuracies in %)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, h in histories.items():
        y = scale * np.asarray(h[key], dtype=float)
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
                 title: str | None = None, errors: dict[str, dict[str, float]] | None = None):
    """Bars for {series: {group: value}}, groups on the x axis; missing values are left out.
    ``errors`` (same shape) draws ±error bars, e.g. the standard deviation over seeds."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    series = list(table)
    groups = list(dict.fromkeys(g for s in series for g in table[s]))
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j, g in enumerate(groups) if table[s].get(g) is not None]
        ys = [table[s][g] for g in groups if table[s].get(g) is not None]
        err = [errors[s][g] for g in groups if table[s].get(g) is not None] if errors and s in errors else None
        bars = ax.bar(xs, ys, width, label=s, yerr=err, capsize=2 if err else 0)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: never over a bar
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------- a model's answer among probability bars (widgets)
ANSWER_COLOURS = {"right": "tab:green", "wrong": "tab:red", None: "tab:blue"}    # None: the truth is unknown
OTHER_BARS = "tab:gray"


def right_or_wrong(answer: int, truth: int | None = None) -> str | None:
    """"right" or "wrong" when the truth is known, None when it is not (a user's upload)."""
    return None if truth is None else "right" if answer == truth else "wrong"


def answer_colours(n: int, answer: int, truth: int | None = None) -> list[str]:
    """Colours of ``n`` probability bars: the answer's bar green only when it is the truth, red when it is not,
    blue when the truth is unknown; the other bars grey. Every widget's bars use this one rule."""
    return [ANSWER_COLOURS[right_or_wrong(answer, truth)] if i == answer else OTHER_BARS for i in range(n)]


def overlay(image: torch.Tensor, heat: torch.Tensor, ax, alpha: float = 0.5, title: str | None = None):
    """An image with a [0, 1] attention map drawn over it (jet colour map), each pixel of ``heat`` a sharp square:
    upsample a coarse map with ``normalize_maps(maps, size, mode="nearest")`` to keep its cells visible."""
    ax.imshow(to_display(image), cmap="gray", interpolation="nearest")
    ax.imshow(heat.detach().cpu().numpy(), cmap="jet", alpha=alpha, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def dot_plot(entries: dict, ax=None, paper: dict | None = None, xlabel: str = "test accuracy (%)", title=None):
    """Means with ±1 std error bars and every seed's value, one row per entry ({label: Entry}); the paper's
    number as a grey cross where given. One shared axis, not truncated bars."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(entries)))
    labels = list(entries)
    for i, label in enumerate(labels):
        e = entries[label]
        ax.errorbar(e["value"], i, xerr=e["std"], fmt="o", color="tab:blue", capsize=4,
                    label="ours: mean ± std" if i == 0 else None)
        ax.scatter(e["values"], [i] * len(e["values"]), s=12, color="tab:blue", alpha=0.4,
                   label="ours: each seed" if i == 0 else None)
        if paper and paper.get(label) is not None:
            ax.scatter(paper[label], i, marker="x", color="gray", label="paper" if i == 0 else None)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# ---------------------------------------------------------------- notebooks 4 and 5: attention grids, filter banks
def attention_grid(backgrounds, heats, row_labels=None, col_labels=None, size: float = 1.45, alpha: float = 0.55,
                   title: str | None = None, cbar_label: str = "attention (each map scaled to [0, 1])"):
    """Attention maps over images in a rows x columns grid, with row and column labels and one colour bar.

    ``backgrounds[r][c]``: a (C, H, W) image, or None for the map alone (``backgrounds=None``: no images);
    ``heats[r][c]``: an (H, W) map in [0, 1] at the image's size, or None for the image alone. Upsample maps
    with ``rotlib.attention.normalize_maps(maps, size, mode="nearest")`` to keep their cells visible.
    Returns the figure."""
    nrows, ncols = len(heats), len(heats[0])
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 1.0, size * nrows + (0.5 if title else 0.2)),
                             squeeze=False, layout="constrained")
    for r in range(nrows):
        for c in range(ncols):
            ax = axes[r, c]
            img = None if backgrounds is None else backgrounds[r][c]
            heat = heats[r][c]
            if img is not None:
                ax.imshow(to_display(img), cmap="gray", interpolation="nearest")
            if heat is not None:
                h = heat.detach().float().cpu().numpy() if isinstance(heat, torch.Tensor) else np.asarray(heat)
                ax.imshow(h, cmap="jet", vmin=0, vmax=1, interpolation="nearest",
                          alpha=alpha if img is not None else 1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0 and col_labels is not None:
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap="jet"), ax=axes, label=cbar_label,
                 shrink=min(0.85, 4.0 / nrows), aspect=25)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _tile(tiles: np.ndarray, ncols: int, gap: int, fill: float) -> np.ndarray:
    """(n, h, w) or (n, h, w, 3) tiles -> one canvas, row by row, ``gap`` pixels of ``fill`` between tiles."""
    n, h, w = tiles.shape[:3]
    nrows = int(np.ceil(n / ncols))
    canvas = np.full((nrows * (h + gap) + gap, ncols * (w + gap) + gap) + tiles.shape[3:], fill, dtype=float)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[gap + r * (h + gap): gap + r * (h + gap) + h, gap + c * (w + gap): gap + c * (w + gap) + w] = tiles[i]
    return canvas


def filter_bank(weight: torch.Tensor, ax=None, ncols: int = 8, scale: int = 8, title: str | None = None):
    """First-layer filters (out, in, k, k) in colour (Fig. 4): each filter scaled to [0, 1] on its own, over all
    its channels together (so its colours are kept; mid-grey = 0 only if the filter is symmetric around 0),
    and upsampled ``scale`` times by nearest neighbour (5x5 -> 40x40 at scale 8)."""
    w = weight.detach().float().cpu()
    lo = w.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = w.flatten(1).max(1).values.view(-1, 1, 1, 1)
    w = upsample((w - lo) / (hi - lo).clamp_min(1e-12), scale)
    tiles = w.permute(0, 2, 3, 1).numpy()
    tiles = tiles if tiles.shape[-1] == 3 else np.repeat(tiles[..., :1], 3, axis=-1)
    if ax is None:
        _, ax = plt.subplots(figsize=(ncols * 0.6, np.ceil(len(w) / ncols) * 0.6))
    ax.imshow(_tile(tiles, ncols, gap=max(1, scale // 2), fill=1.0), interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def spectrum_bank(weight: torch.Tensor, ax=None, ncols: int = 8, pad: int = 32, decades: float = 3.0,
                  title: str | None = None):
    """Each filter's log10 power spectrum (:func:`rotlib.filters.log_power_spectrum`: zero-padded FFT, filter
    scaled to unit energy, zero frequency at the centre of its tile) in a grid. The colour scale is the same
    for every bank: ``decades`` decades up to log10(k * k), the power of a k x k unit-energy filter that puts
    all its energy at one frequency. Returns the image (for ``fig.colorbar``)."""
    spec = log_power_spectrum(weight, pad).numpy()
    top = float(np.log10(weight.shape[-2] * weight.shape[-1]))
    if ax is None:
        _, ax = plt.subplots(figsize=(ncols * 0.6, np.ceil(len(spec) / ncols) * 0.6))
    cmap = plt.get_cmap("magma").copy()
    cmap.set_bad("white")
    im = ax.imshow(_tile(spec, ncols, gap=max(1, pad // 8), fill=np.nan), cmap=cmap, vmin=top - decades, vmax=top,
                   interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return im


def filter_orientations(props, ax=None, threshold: float | None = None, title: str | None = None,
                        labels=None):
    """One dot per filter: its dominant orientation (degrees of the wave vector, perpendicular to its edges)
    against its peak frequency, dot area growing with orientedness; filters at or above ``threshold``
    filled, the others hollow. ``props``: :func:`rotlib.filters.filter_properties` of one bank, or a
    list of them (one marker shape per bank, e.g. per seed, named by ``labels`` in the legend)."""
    threshold = ORIENTED if threshold is None else threshold
    banks = props if isinstance(props, (list, tuple)) else [props]
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    for i, pr in enumerate(banks):
        deg = np.degrees(pr["orientation"].numpy())
        freq = pr["peak_frequency"].numpy()
        o = pr["orientedness"].numpy()
        on = o >= threshold
        marker = "os^D"[i % 4]
        label = labels[i] if labels is not None else (f"bank {i}" if len(banks) > 1 else None)
        ax.scatter(deg[on], freq[on], s=10 + 80 * o[on], marker=marker, color="tab:red", alpha=0.7,
                   label=None if label is None else f"{label}, oriented")
        ax.scatter(deg[~on], freq[~on], s=10 + 80 * o[~on], marker=marker, facecolors="none", edgecolors="gray",
                   alpha=0.6, label=None if label is None else f"{label}, not oriented")
    ax.set_xlim(-5, 185)
    ax.set_xticks(range(0, 181, 45))
    ax.set_xlabel("dominant orientation (°)")
    ax.set_ylabel("peak frequency (cycles/pixel)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return ax
