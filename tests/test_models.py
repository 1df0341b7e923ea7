import pytest
import torch

from rotlib import NetworkInNetwork, count_parameters
from rotlib.models import ConvClassifier, NonLinearClassifier, make_classifier


def test_official_parameter_count():
    # architectures/NetworkInNetwork.py with num_stages=4, nChannels=192, 3 input channels, 4 classes
    assert count_parameters(NetworkInNetwork(num_blocks=4, width=192, in_channels=3, num_classes=4)) == 1_411_140


@pytest.mark.parametrize("size,channels,expected", [
    (32, 3, {"conv1": (96, 16, 16), "conv2": (192, 8, 8), "conv3": (192, 8, 8), "conv4": (192, 8, 8)}),
    (28, 1, {"conv1": (96, 14, 14), "conv2": (192, 7, 7), "conv3": (192, 7, 7), "conv4": (192, 7, 7)}),
])
def test_feature_taps(size, channels, expected):
    model = NetworkInNetwork(4, 192, channels).eval()
    feats = model(torch.zeros(2, channels, size, size), out_feat_keys=list(expected))
    assert {k: tuple(f.shape[1:]) for k, f in zip(expected, feats)} == expected
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 4)


def test_narrow_and_deep_variants():
    m = NetworkInNetwork(num_blocks=5, width=64, in_channels=1, num_classes=8)
    assert m.block_names == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert m(torch.zeros(1, 1, 28, 28), out_feat_keys=["conv1"])[0].shape == (1, 32, 14, 14)
    with pytest.raises(KeyError, match="conv9"):
        m(torch.zeros(1, 1, 28, 28), out_feat_keys=["conv9"])
    with pytest.raises(ValueError, match="at least 3"):
        NetworkInNetwork(num_blocks=2)


def test_classifiers():
    x = torch.zeros(4, 192, 8, 8)
    nl = NonLinearClassifier(192 * 8 * 8, 10)
    assert nl(x).shape == (4, 10)
    # official MultLayer: 12288*200 + 2*200 + 200*200 + 2*200 + 200*10 + 10
    assert count_parameters(nl) == 12288 * 200 + 400 + 40000 + 400 + 2010
    assert ConvClassifier(192, 10)(x).shape == (4, 10)
    assert make_classifier("linear", (192, 8, 8), 10)(x).shape == (4, 10)
    with pytest.raises(ValueError, match="unknown classifier"):
        make_classifier("svm", (192, 8, 8), 10)


@pytest.mark.parametrize("width", [0, 1, -4])
def test_width_too_small_is_a_clear_error(width):
    with pytest.raises(ValueError, match="width must be a whole number, at least 2"):
        NetworkInNetwork(num_blocks=3, width=width)


def test_feature_shape_runs_on_the_backbones_device_and_keeps_its_mode():
    from rotlib.models import feature_shape
    net = NetworkInNetwork(3, 16, 3, 4).train()
    assert feature_shape(net, "conv2", (3, 32, 32)) == (16, 8, 8)
    assert net.training and all(m.training for m in net.modules())
    meta = NetworkInNetwork(3, 16, 3, 4).to("meta")   # any device but the CPU: a CPU probe input would not fit
    assert feature_shape(meta, "conv1", (3, 32, 32)) == (8, 16, 16)


def test_probe_leaves_the_backbone_alone():
    from rotlib.data import ImageData
    from rotlib.models import Probe
    from rotlib.train import ClassificationTask, RotationTask, TrainConfig, fit
    torch.manual_seed(0)
    data = ImageData(torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8), torch.arange(32) % 2, ["a", "b"],
                     (0.5,) * 3, (0.25,) * 3)
    backbone = NetworkInNetwork(3, 8, 3, 4)
    backbone.blocks[2].requires_grad_(False)           # the caller's own choice, to be kept as it is
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    flags = [p.requires_grad for p in backbone.parameters()]
    probe = Probe(backbone, "conv2", make_classifier("linear", (8, 4, 4), 2))
    frozen = probe[0].backbone
    assert not any(p.requires_grad for p in frozen.parameters())
    fit(probe, data, ClassificationTask(data.normalize, augment=True), TrainConfig(epochs=2, batch_size=8, lr=0.5),
        device="cpu", progress=False)
    for k, v in frozen.state_dict().items():           # the probe's frozen features did not train (BN stats included)
        assert torch.equal(v, before[k]), k
    for k, v in backbone.state_dict().items():         # nor did the caller's backbone
        assert torch.equal(v, before[k]), k
    assert [p.requires_grad for p in backbone.parameters()] == flags
    fit(backbone, data, RotationTask(data.normalize), TrainConfig(epochs=1, batch_size=8), device="cpu",
        progress=False)                                # the RotNet can still be trained after probing
    assert not torch.equal(backbone.blocks[0][0][0].weight, before["blocks.0.0.0.weight"])
