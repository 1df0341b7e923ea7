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
