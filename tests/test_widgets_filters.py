import base64
import io
import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from matplotlib.colors import to_hex  # noqa: E402

from rotlib import NetworkInNetwork  # noqa: E402
from rotlib.data import ImageData  # noqa: E402
from rotlib.filters import (colour_share, filter_stats, first_layer_weight, log_power_spectrum,  # noqa: E402
                            upsample)
from rotlib.plots import answer_colours  # noqa: E402
from rotlib.rotations import rotate  # noqa: E402
from rotlib.widgets import AttentionWidget, ProbeWidget, RotateImageWidget, RotationPredictionWidget  # noqa: E402
from rotlib import experiments as E  # noqa: E402


def record_draws(w):
    """Spy on a widget's drawing: each redraw appends (values, result, PNG bytes of the figure it drew)."""
    draws, draw = [], w._draw

    def spy(**values):
        result, fig = draw(**values)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        draws.append((values, result, buf.getvalue()))
        return result, fig

    w._draw = spy
    return draws


def moved(w, draws, control, value):
    """Move a control as a user would; assert its callback redrew the output with the new value and a new image."""
    before = len(draws)
    getattr(w, control).value = value
    assert len(draws) == before + 1, f"moving {control!r} did not redraw the output"
    values, result, png = draws[-1]
    assert values[control] == value
    if before:
        assert png != draws[-2][2], f"moving {control!r} redrew the same image"
    return result


def test_rotate_image_widget_update():
    imgs = torch.randint(0, 256, (3, 1, 10, 10), dtype=torch.uint8)
    w = RotateImageWidget(imgs)
    assert torch.equal(w.update(angle=90, index=1), rotate(imgs[1], 1))
    draws = record_draws(w)
    w.update()
    assert torch.equal(moved(w, draws, "angle", 180), rotate(imgs[0], 2))  # the slider callback redraws
    assert torch.equal(moved(w, draws, "index", 2), rotate(imgs[2], 2))
    assert torch.equal(w.update(), rotate(imgs[2], 2))
    assert w.update(angle=45, index=2)[0, 0, 0] == 0


def test_widget_static_figure():
    """Displaying .ui also stores a PNG of the current state, which GitHub and untrusted notebooks show."""
    imgs = torch.randint(0, 256, (3, 1, 10, 10), dtype=torch.uint8)
    w = RotateImageWidget(imgs)
    bundle = w.ui._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/plain" in bundle
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG") and png == w.png()
    w.angle.value = 90
    assert w.png() != png


def test_rotation_prediction_widget(tiny):
    model = E.train_rotnet(tiny, progress=False)
    test = E.load_split(tiny, "test")
    w = RotationPredictionWidget(model, test)
    probs = w.update(angle=90, index=3)
    assert probs.shape == (4,) and probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(probs, w.update(angle=0, index=3))
    draws = record_draws(w)
    w.update()
    assert torch.allclose(moved(w, draws, "index", 5), w.probabilities(0, 5))
    assert torch.allclose(moved(w, draws, "angle", 270), w.probabilities(270, 5))


GREEN, RED, BLUE, GREY = (to_hex(c) for c in ("tab:green", "tab:red", "tab:blue", "tab:gray"))


def bar_colours(ax):
    return [to_hex(p.get_facecolor()) for p in ax.patches]


def test_answer_colours_green_only_when_right():
    """The one rule of every widget's bars: the answer green if right, red if wrong, blue if the truth is unknown."""
    assert [to_hex(c) for c in answer_colours(4, 1, truth=1)] == [GREY, GREEN, GREY, GREY]
    assert [to_hex(c) for c in answer_colours(4, 1, truth=2)] == [GREY, RED, GREY, GREY]
    assert [to_hex(c) for c in answer_colours(4, 3)] == [GREY, GREY, GREY, BLUE]


class AlwaysUpright(torch.nn.Module):
    """A 'RotNet' that answers 0° for every input."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.tensor([[5.0, 0.0, 0.0, 0.0]]).expand(len(x), 4) + 0 * self.w


def small_data(n=3):
    """Grey RGB images: no pixel of them can pass for a bar's colour in a still."""
    grey = torch.randint(0, 256, (n, 1, 32, 32), dtype=torch.uint8).repeat(1, 3, 1, 1)
    return ImageData(grey, torch.arange(n), ["a"] * n, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_rotation_prediction_bars_say_right_or_wrong():
    """Notebook 2's widget (and its still): the answer 0° is green at 0°, red at 90°, blue at 45° (no right answer)."""
    w = RotationPredictionWidget(AlwaysUpright(), small_data())
    for angle, colour, word in [(0, GREEN, "right"), (90, RED, "wrong"), (45, BLUE, "none of these")]:
        _, fig = w._draw(angle=angle, index=0)
        assert bar_colours(fig.axes[1]) == [colour, GREY, GREY, GREY], angle
        assert word in fig.axes[1].get_title()
    w.angle.value = 90                                     # the still shows the current state: a red bar, no green
    still = colours_in(base64.b64decode(w.ui._repr_mimebundle_()["image/png"]))
    assert RED in still and GREEN not in still


def colours_in(png: bytes) -> set[str]:
    """The colours of a PNG's pixels, as hex strings."""
    from PIL import Image
    return {"#%02x%02x%02x" % c[1][:3] for c in Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 20)}


def test_attention_widget_shows_cells_unsmoothed():
    """Notebook 4's widget and its still: a coarse map's cells stay sharp squares (nearest neighbour)."""
    w = AttentionWidget({"net": NetworkInNetwork(3, 16, 3, 4)}, small_data(), indices=[0, 1])
    heat, fig = w._draw(image=0, network="net", block="conv3", p=2, k=0)
    cells = heat.shape[-1] // 8                              # conv3 of a 3-block NIN: an 8x8 map on a 32x32 image
    assert torch.equal(heat, heat[::cells, ::cells].repeat_interleave(cells, 0).repeat_interleave(cells, 1))
    assert [im.get_interpolation() for im in fig.axes[0].images] == ["nearest", "nearest"]


def test_attention_widget(tiny):
    test = E.load_split(tiny, "test")
    nets = {"random": E.random_init(tiny), "other": E.random_init(tiny, seed=1)}
    w = AttentionWidget(nets, test)
    heat = w.update(image=2, network="random", block="conv1", p=4, k=1)
    assert heat.shape == (32, 32) and heat.min() == 0 and heat.max() == 1
    draws = record_draws(w)
    w.update()
    for control, value in [("p", 1), ("k", 3), ("block", "conv1"), ("network", "other"), ("image", 7)]:
        assert torch.equal(moved(w, draws, control, value), w.update())


def test_probe_widget_refits_the_recorded_probe_exactly(tiny):
    """Notebook 3's live probe: its re-fit is the recorded probe's protocol (the same seed gives the cached probe's
    value), and each control re-fits (the classifier, the labels, the block change the figure)."""
    net = E.random_init(tiny, seed=1)
    recorded = {("nonlinear", None): {b: {"value": 50.0, "std": 1.0, "n": 3} for b in net.block_names}}
    w = ProbeWidget(net, tiny, recorded, seed=0, budgets=(2, None))
    for block, labels, classifier in [("conv2", None, "nonlinear"), ("conv3", 2, "linear")]:
        assert w.refit(block, labels, classifier) == E.probe(net, tiny, block, classifier, labels, seed=0)
        assert w.last_seconds > 0
    draws = record_draws(w)
    w.update()
    for control, value in [("classifier", "linear"), ("labels", "all"), ("block", "conv1")]:
        assert moved(w, draws, control, value) == w.update()
    assert w.labels.index is not None                        # "all" shows as selected (None would blank the menu)
    with pytest.raises(ValueError, match="features computed once"):
        ProbeWidget(net, tiny.replace(precompute_features=False), recorded)


def gabor(theta, freq=0.2, sigma=1.5, phase=0.0, size=5):
    """A size x size Gabor filter: a grating of ``freq`` cycles/pixel whose wave vector points along ``theta``."""
    yy, xx = torch.meshgrid(torch.arange(size) - size // 2.0, torch.arange(size) - size // 2.0, indexing="ij")
    u = xx * math.cos(theta) + yy * math.sin(theta)
    return torch.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2)) * torch.cos(2 * math.pi * freq * u + phase)


def test_filter_variety_counts_oriented_filters_only():
    """The variety statistic: oriented filters at many orientations score high; white noise and one
    oriented filter repeated score low, although the naive orientation entropy calls noise varied."""
    angles = [math.pi * i / 8 for i in range(8)]            # the centres of the 8 orientation bins
    bank = torch.stack([gabor(a, f, s, ph) for a in angles for f in (0.15, 0.25) for s in (1.5, 2.5)
                        for ph in (0.0, math.pi / 2)])[:, None].repeat(1, 3, 1, 1)   # 64 luminance Gabors
    noise = torch.randn(64, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    repeated = gabor(0.3)[None, None].repeat(64, 3, 1, 1)
    s_bank, s_noise, s_rep = filter_stats(bank), filter_stats(noise), filter_stats(repeated)
    assert s_bank["oriented_share"] == 1 and s_bank["orientation_entropy"] == pytest.approx(3.0)
    assert s_bank["oriented_variety"] > 0.95
    assert s_noise["oriented_share"] < 0.1 and s_noise["oriented_variety"] < 0.1
    assert s_noise["entropy_all"] > 2.5          # what the old statistic measured: noise looks "varied"
    assert s_rep["oriented_share"] == 1 and s_rep["oriented_variety"] < 0.1
    near_horizontal = torch.stack([gabor(a) for a in (0.05, math.pi - 0.05)] * 32)[:, None].repeat(1, 3, 1, 1)
    assert filter_stats(near_horizontal)["orientation_entropy"] == 0   # 3° and 177°: one orientation, one bin
    assert s_bank["smoothness"] > s_noise["smoothness"] + 0.2
    assert first_layer_weight(NetworkInNetwork(3, 16, 3, 4)).shape == (16, 3, 5, 5)


def test_colour_share_splits_luminance_from_colour():
    g = gabor(0.0)
    lum = g[None, None].repeat(1, 3, 1, 1)                           # the same in R, G and B
    opponent = torch.stack([g, -g, torch.zeros_like(g)])[None]     # R - G
    noise = torch.randn(4000, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    assert colour_share(lum).item() == pytest.approx(0.0, abs=1e-6)
    assert colour_share(opponent).item() == pytest.approx(1.0)
    assert colour_share(noise).mean().item() == pytest.approx(2 / 3, abs=0.01)   # 2 of 3 directions are colour
    assert filter_stats(opponent.repeat(2, 1, 1, 1))["colour_share"] == pytest.approx(1.0)


def test_filter_display_helpers():
    w = torch.randn(6, 3, 5, 5)
    up = upsample(w, 8)
    assert up.shape == (6, 3, 40, 40) and torch.equal(up[..., ::8, ::8], w)
    spec = log_power_spectrum(w, pad=32)
    assert spec.shape == (6, 32, 32)
    flat = log_power_spectrum(torch.ones(1, 3, 5, 5), pad=32)[0]    # a constant filter: all power at zero frequency
    assert flat.argmax().item() == 16 * 32 + 16
