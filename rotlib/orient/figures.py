"""Figures: one result in four panels (:func:`show_result`), accuracy against coverage (:func:`coverage_plot`)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import to_rgb8
from .apply import OrientResult
from .evaluation import Evaluation
from .orienter import Orienter, model_view
from .turns import DEFAULT_MIN_CONFIDENCE, TURNS, describe_fix, describe_turn


def _display(image: torch.Tensor, max_side: int = 512):
    """A (C, H, W) image as an (H, W, C) array in [0, 1] for imshow, downscaled for display."""
    from torchvision.transforms.v2.functional import resize
    image = to_rgb8(image)
    h, w = image.shape[-2:]
    if max(h, w) > max_side:
        image = resize(image, [max(1, round(h * max_side / max(h, w))), max(1, round(w * max_side / max(h, w)))],
                       antialias=True)
    return (image.permute(1, 2, 0).float() / 255).numpy()


def show_result(res: OrientResult, orienter: Orienter, fig=None, truth: int | None = None):
    """Four panels: the picture as uploaded (EXIF applied), what the model sees, the probabilities, the corrected picture.

    ``truth``: the turn the picture really has (degrees ccw) when it is known; the answer's bar is then green if
    right, red if wrong; unknown (None, e.g. an upload): blue."""
    import matplotlib.pyplot as plt
    from ..plots import answer_colours, right_or_wrong, to_display
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
    answer, known = TURNS.index(res.turn), None if truth is None else TURNS.index(truth)
    axes[2].bar([describe_turn(t) for t in TURNS], res.probabilities, color=answer_colours(4, answer, known))
    axes[2].set_ylim(0, 1)
    said = {None: "", "right": "\nits answer: right",
            "wrong": f"\nits answer: wrong, truly {describe_turn(truth)}"}[right_or_wrong(answer, known)]
    axes[2].set_title(f"p(picture is turned by ...){said}", fontsize=8)
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
