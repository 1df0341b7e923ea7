import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from rotlib import NetworkInNetwork  # noqa: E402
from rotlib.filters import filter_spectrum_stats, first_layer_weight  # noqa: E402
from rotlib.rotations import rotate  # noqa: E402
from rotlib.widgets import AttentionWidget, RotateImageWidget, RotationPredictionWidget  # noqa: E402
from rotlib import experiments as E  # noqa: E402


def test_rotate_image_widget_update():
    imgs = torch.randint(0, 256, (3, 1, 10, 10), dtype=torch.uint8)
    w = RotateImageWidget(imgs)
    assert torch.equal(w.update(angle=90, index=1), rotate(imgs[1], 1))
    w.angle.value = 180  # the slider callback runs update()
    assert torch.equal(w.update(), rotate(imgs[0], 2))
    assert w.update(angle=45, index=2)[0, 0, 0] == 0


def test_rotation_prediction_widget(tiny):
    model = E.train_rotnet(tiny, progress=False)
    test = E.load_split(tiny, "test")
    w = RotationPredictionWidget(model, test)
    probs = w.update(angle=90, index=3)
    assert probs.shape == (4,) and probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(probs, w.update(angle=0, index=3))
    w.index.value = 5
    w.angle.value = 270


def test_attention_widget(tiny):
    test = E.load_split(tiny, "test")
    nets = {"random": E.random_init(tiny), "other": E.random_init(tiny, seed=1)}
    w = AttentionWidget(nets, test)
    heat = w.update(image=2, network="random", block="conv1", p=4, k=1)
    assert heat.shape == (32, 32) and heat.min() == 0 and heat.max() == 1
    w.p.value = 1
    w.k.value = 3


def test_filter_stats_separate_smooth_oriented_from_noise():
    torch.manual_seed(0)
    noise = torch.randn(64, 3, 5, 5)
    yy, xx = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    angles = torch.linspace(0, 3.14159, 65)[:64]
    gratings = torch.stack([torch.cos(0.9 * (xx * a.cos() + yy * a.sin())) for a in angles])[:, None].repeat(1, 3, 1, 1)
    s_noise, s_grat = filter_spectrum_stats(noise), filter_spectrum_stats(gratings)
    assert s_grat["orientedness"] > s_noise["orientedness"] + 0.3
    assert s_grat["smoothness"] > s_noise["smoothness"]
    assert s_grat["orientation_entropy"] > 2.5  # orientations cover the half circle
    assert first_layer_weight(NetworkInNetwork(3, 16, 3, 4)).shape == (16, 3, 5, 5)
