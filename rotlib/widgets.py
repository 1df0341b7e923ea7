"""Interactive widgets (ipywidgets): rotate an image live, watch a RotNet's prediction, explore attention, re-fit a
probe live.

Each widget keeps its logic in an ``update(...)`` method that returns what
it drew, so it can be tested without a browser; ``.ui`` is the widget box
to display in a notebook (``display(w.ui)``). Displaying ``.ui`` also
stores a PNG of the widget's current (default) state in the same output
(``w.png()``): a live JupyterLab shows the widget, while GitHub and an
untrusted notebook, which cannot show widgets, show that image instead of
``VBox(children=...)``.
"""
from __future__ import annotations

import base64
import io
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from .attention import block_attention, normalize_maps
from .experiments import block_features, head_accuracy, labelled_subset, load_split
from .modes import evaluating
from .plots import answer_colours, overlay, right_or_wrong, to_display
from .rotations import rotate, rotate_by_angle, rotation_angles


class StillBox(W.VBox):
    """The widget's box; its display data also carries a static PNG of the current state (rank below the widget)."""

    def __init__(self, children, png):
        super().__init__(children)
        self._png = png

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs)
        if data is not None:
            data["image/png"] = base64.b64encode(self._png()).decode("ascii")
        return data


class _FigureWidget:
    """Shared plumbing: ``_draw(**values)`` returns ``(result, figure)``; ``update`` shows it in ``self.out``."""

    controls: tuple = ()

    def _wire(self, rows):
        for name in self.controls:
            getattr(self, name).observe(lambda _: self.update(), names="value")
        self.ui = StillBox(rows + [self.out], self.png)
        self.update()

    def _redraw(self, **values):
        values = {k: getattr(self, k).value if v is None else v for k, v in values.items()}
        with self.out:
            self.out.clear_output(wait=True)
            result, fig = self._draw(**values)
            plt.show()
            plt.close(fig)
        return result

    def png(self) -> bytes:
        """The current state as a PNG image (what ``update()`` draws), e.g. for a static copy of the notebook."""
        return still_png(self._draw(**{k: getattr(self, k).value for k in self.controls})[1])


def still_png(fig) -> bytes:
    """A widget's figure as PNG bytes, captioned as a still; closes the figure."""
    fig.text(0.5, 0, "(a still of the widget: run the notebook to use it)", ha="center", va="top", fontsize=7,
             color="gray")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class RotateImageWidget(_FigureWidget):
    """A slider rotates an image live: exact for multiples of 90 degrees, interpolated otherwise (notebook 1)."""

    controls = ("angle", "index")

    def __init__(self, images: torch.Tensor, titles=None):
        self.images, self.titles = images, titles
        self.angle = W.IntSlider(value=0, min=0, max=355, step=5, description="angle (deg)", continuous_update=True)
        self.index = W.IntSlider(value=0, min=0, max=len(images) - 1, description="image")
        self.out = W.Output()
        self._wire([W.HBox([self.index, self.angle])])

    def update(self, angle: int | None = None, index: int | None = None) -> torch.Tensor:
        return self._redraw(angle=angle, index=index)

    def _draw(self, angle, index):
        rotated = rotate_by_angle(self.images[index], angle)
        exact = angle % 90 == 0
        fig, ax = plt.subplots(figsize=(2.6, 2.8))
        ax.imshow(to_display(rotated), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{angle} deg: " + ("exact (flip/transpose)" if exact else "interpolated"), fontsize=8)
        ax.axis("off")
        return rotated, fig


class RotationPredictionWidget(_FigureWidget):
    """Rotate a test image by any angle and see the RotNet's probabilities for its K rotations (notebook 2)."""

    controls = ("angle", "index")

    def __init__(self, model, data, rotations: str = "4", indices=None):
        self.model, self.data, self.rotations = model, data, rotations
        self.angles = rotation_angles(rotations)
        self.indices = list(indices) if indices is not None else list(range(min(len(data), 50)))
        self.angle = W.IntSlider(value=0, min=0, max=355, step=5, description="angle (deg)")
        self.index = W.Dropdown(options=self.indices, value=self.indices[0], description="test image")
        self.out = W.Output()
        self._wire([W.HBox([self.index, self.angle])])

    @torch.no_grad()
    def probabilities(self, angle: float, index: int) -> torch.Tensor:
        device = next(self.model.parameters()).device
        x = self.data.normalize(rotate_by_angle(self.data.images[index:index + 1], angle)).to(device)
        with evaluating(self.model):          # eval mode for the prediction only: the caller's model is left as it was
            return torch.softmax(self.model(x).float(), dim=1)[0].cpu()

    def update(self, angle: int | None = None, index: int | None = None) -> torch.Tensor:
        return self._redraw(angle=angle, index=index)

    def _draw(self, angle, index):
        probs = self.probabilities(angle, index)
        fig, (a, b) = plt.subplots(1, 2, figsize=(6, 2.4), gridspec_kw={"width_ratios": [1, 1.6]})
        a.imshow(to_display(rotate_by_angle(self.data.images[index], angle)), cmap="gray", interpolation="nearest")
        a.set_title(f"rotated by {angle} deg", fontsize=8)
        a.axis("off")
        answer = int(probs.argmax())
        truth = self.angles.index(angle % 360) if angle % 360 in self.angles else None   # 35°: none of its classes
        b.bar([f"{d}°" for d in self.angles], probs.numpy(), color=answer_colours(len(probs), answer, truth))
        b.set_ylim(0, 1)
        said = f"its answer {self.angles[answer]}°: " + (right_or_wrong(answer, truth) or f"{angle}° is none of these")
        b.set_title(f"RotNet: which rotation was applied?\n{said}", fontsize=8)
        return probs, fig


class AttentionWidget(_FigureWidget):
    """Pick an image, a network, a block, the power p and a rotation; the attention overlay updates (notebook 4)."""

    controls = ("image", "network", "block", "p", "k")

    def __init__(self, models: dict, data, indices=None):
        self.models, self.data = models, data
        # each image once, in the given order (a list like picked + range(20) repeats some)
        self.indices = list(dict.fromkeys(int(i) for i in indices)) if indices is not None \
            else list(range(min(len(data), 50)))
        first = next(iter(models.values()))
        self.image = W.Dropdown(options=self.indices, value=self.indices[0], description="image")
        self.network = W.Dropdown(options=list(models), value=list(models)[0], description="network")
        self.block = W.Dropdown(options=first.block_names[:3], value="conv2", description="block")
        self.p = W.Dropdown(options=[1, 2, 4], value=2, description="p")
        self.k = W.Dropdown(options=[(f"{90 * k}°", k) for k in range(4)], value=0, description="rotation")
        self.out = W.Output()
        self._wire([W.HBox([self.image, self.network]), W.HBox([self.block, self.p, self.k])])

    def update(self, image=None, network=None, block=None, p=None, k=None) -> torch.Tensor:
        return self._redraw(image=image, network=network, block=block, p=p, k=k)

    def _draw(self, image, network, block, p, k):
        raw = rotate(self.data.images[image:image + 1], k)
        model = self.models[network]
        device = next(model.parameters()).device
        maps = block_attention(model, self.data.normalize(raw).to(device), block, p).cpu()
        heat = normalize_maps(maps, size=raw.shape[-1], mode="nearest")[0]     # the map's cells, not smoothed
        fig, ax = plt.subplots(figsize=(2.8, 3.0))
        overlay(raw[0], heat, ax, title=f"{network}, {block}, p={p}, {90 * k}°")
        return heat, fig


class ProbeWidget(_FigureWidget):
    """Pick a block, the labels per class and a classifier: a probe re-fits on the RotNet's frozen features, in a few
    seconds, and lands beside the recorded mean ± std over the seeds (notebook 3).

    The features of every block are extracted once, when the widget is made (for the quick profile's 5,000 + 1,000
    images, about 0.5 GB); each re-fit is :func:`rotlib.experiments.head_accuracy`, the recorded probes' own protocol
    with the seed ``seed``, so on the CPU kind that made the recorded numbers it gives that seed's value exactly.
    ``recorded``: ``{(classifier, per_class): {block: Entry}}`` (per_class None: all labels), what the notebook
    measured. Only for a profile whose probes train on features computed once (``precompute_features``, the quick
    profile): the paper profile's probes see augmented images every batch and cannot be re-fitted in seconds."""

    controls = ("block", "labels", "classifier")

    def __init__(self, backbone, profile, recorded: dict, seed: int = 0, budgets=(20, 100, None),
                 classifiers=("linear", "nonlinear")):
        if not profile.precompute_features:
            raise ValueError(f"the live probe re-fits on features computed once; profile {profile.name!r} trains its "
                             "probes on augmented images (precompute_features=False): use the quick profile")
        self.profile, self.recorded, self.seed = profile, recorded, seed
        self.train_features = {k: block_features(backbone, profile, k)[0] for k in budgets}
        self.test_features = block_features(backbone, profile, budgets[-1])[1]            # the same for every budget
        self.labels_of = {k: labelled_subset(profile, k).labels for k in budgets}
        test = load_split(profile, "test")
        self.test_labels, self.num_classes = test.labels, len(test.classes)
        self.blocks = list(backbone.block_names)
        self.last_seconds, self._shown = None, None
        self.block = W.Dropdown(options=self.blocks, value="conv2" if "conv2" in self.blocks else self.blocks[0],
                                description="block")
        # a dropdown cannot hold None (it means "nothing selected"): "all" stands for per_class=None
        self.labels = W.Dropdown(options=[("all", "all") if k is None else (f"{k} per class", k) for k in budgets],
                                 value=budgets[0] if budgets[0] is not None else "all", description="labels")
        self.classifier = W.Dropdown(options=list(classifiers), value=classifiers[-1], description="classifier")
        self.out = W.Output()
        self._wire([W.HBox([self.block, self.labels, self.classifier])])

    def refit(self, block: str, labels, classifier: str) -> float:
        """Train the probe now (not cached) and return its test accuracy (%); ``last_seconds`` says how long.
        ``labels``: labels per class, None or "all" for all."""
        labels = None if labels == "all" else labels
        t0 = time.perf_counter()
        acc = head_accuracy(self.train_features[labels][block], self.labels_of[labels], self.test_features[block],
                            self.test_labels, self.profile, classifier, self.num_classes, seed=self.seed)
        self.last_seconds = time.perf_counter() - t0
        return acc

    def update(self, block=None, labels=None, classifier=None) -> float:
        return self._redraw(block=block, labels=labels, classifier=classifier)

    def _draw(self, block, labels, classifier):
        if self._shown and self._shown[0] == (block, labels, classifier):
            acc = self._shown[1]                     # the still (png) of what is on screen: not fitted twice
        else:
            acc = self.refit(block, labels, classifier)
            self._shown = ((block, labels, classifier), acc)
        labels = None if labels == "all" else labels
        curve = self.recorded.get((classifier, labels), {})
        budget = "all labels" if labels is None else f"{labels} labels/class"
        fig, ax = plt.subplots(figsize=(5.2, 3.0))
        if curve:
            x = [self.blocks.index(b) for b in curve]
            ax.errorbar(x, [e["value"] for e in curve.values()], yerr=[e["std"] for e in curve.values()], fmt="o-",
                        color="gray", capsize=3, label=f"recorded, mean ± std of {next(iter(curve.values()))['n']} "
                                                       "seeds")
        ax.plot([self.blocks.index(block)], [acc], "*", ms=16, color="tab:red",
                label=f"re-fitted now, seed {self.seed}: {acc:.1f}%")
        ax.set_xticks(range(len(self.blocks)), self.blocks)
        ax.set_ylim(0, 100)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{classifier} probe, {budget}: re-fitted in {self.last_seconds:.1f} s", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        return acc, fig
