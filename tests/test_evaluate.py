"""Reference checks of the metrics on constructed data: exact accuracies and confusion matrices."""
import pytest
import torch
from torch import nn

from rotlib import experiments as E
from rotlib.data import ImageData
from rotlib.evaluate import accuracy, confusion_matrix, evaluating, extract_features, per_class_accuracy, predict
from rotlib.models import NetworkInNetwork
from rotlib.train import ClassificationTask, RotationTask, TensorData


class ReadsTheAnswer(nn.Module):
    """Predicts the class written in each input's single value (one-hot logits)."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return nn.functional.one_hot(x.flatten(1)[:, 0].round().long(), self.num_classes).float() * self.scale


class FindsTheBrightSide(nn.Module):
    """An oracle for the tiny CIFAR files (bright band on top): the brightest border says the rotation."""

    def forward(self, x):
        b = 4
        sides = [x[..., :b, :], x[..., :, :b], x[..., -b:, :], x[..., :, -b:]]  # up is top, left, bottom, right
        return torch.stack([s.mean(dim=(1, 2, 3)) for s in sides], dim=1)      # after 0, 1, 2, 3 CCW quarter turns


def test_accuracy_and_confusion_are_exact():
    predicted = torch.tensor([0, 1, 2, 3, 4] * 4)
    labels = predicted.clone()
    labels[[1, 6, 13]] = torch.tensor([0, 0, 2])         # 3 of 20 wrong: true 0 predicted 1 (x2), true 2 predicted 3
    data = TensorData(predicted.float().view(20, 1, 1, 1), labels)
    model = ReadsTheAnswer(5)
    assert accuracy(model, data, ClassificationTask(), batch_size=6, device="cpu", precision="fp32") == \
        pytest.approx(85.0, abs=1e-4)
    logits, targets, image = predict(model, data, ClassificationTask(), batch_size=6, device="cpu", precision="fp32")
    assert torch.equal(image, torch.arange(20))
    assert torch.equal(targets, labels) and torch.equal(logits.argmax(1), predicted)
    expected = torch.tensor([[4, 2, 0, 0, 0],
                             [0, 2, 0, 0, 0],
                             [0, 0, 4, 1, 0],
                             [0, 0, 0, 3, 0],
                             [0, 0, 0, 0, 4]])
    assert torch.equal(confusion_matrix(logits, targets, 5), expected)   # rows: true class, columns: predicted


def test_an_oracle_scores_100_percent_rotation_accuracy(tiny):
    model = FindsTheBrightSide()
    assert E.rotation_accuracy(model, tiny, "4") == 100.0
    n = len(E.load_split(tiny, "test"))
    assert torch.equal(E.rotation_confusion(model, tiny, "4"), n * torch.eye(4, dtype=torch.long))


def test_each_prediction_says_which_image_it_comes_from():
    """Rotations are rotation-major within each batch, not over the whole set: per-class accuracy must follow
    ``Predictions.image``. Class-0 images have a bright top band (the oracle finds every turn), class-1 images are
    flat (the oracle's tie goes to 0 degrees: right on 1 turn in 4). A batch of 3 does not divide the 10 images."""
    images = torch.full((10, 3, 8, 8), 100, dtype=torch.uint8)
    labels = torch.tensor([0, 1] * 5)
    images[labels == 0, :, :4, :] = 250
    data = ImageData(images, labels, ["banded", "flat"], (0.5,) * 3, (0.25,) * 3)
    p = predict(FindsTheBrightSide(), data, RotationTask(data.normalize), batch_size=3, device="cpu", precision="fp32")
    assert torch.equal(p.image[:12], torch.tensor([0, 1, 2] * 4)) and torch.equal(p.image[-4:], torch.tensor([9] * 4))
    assert torch.equal(torch.bincount(p.image), torch.full((10,), 4))
    assert per_class_accuracy(p, labels, 2).tolist() == [100.0, 25.0]


def test_evaluation_puts_the_model_back_as_it_was():
    net = NetworkInNetwork(3, 8, 3, 4).train()
    net.blocks[0].eval()                                  # a mixed state, restored exactly
    modes = [m.training for m in net.modules()]
    data = TensorData(torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))
    predict(net, data, ClassificationTask(), device="cpu")
    assert [m.training for m in net.modules()] == modes
    with evaluating(net, torch.device("cpu")) as m:
        assert not any(x.training for x in m.modules())
    assert [m.training for m in net.modules()] == modes
    images = ImageData(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ["a"],
                       (0.5,) * 3, (0.5,) * 3)
    feats = extract_features(net, images, images.normalize, ["conv1"], device="cpu")
    assert feats["conv1"].shape == (4, 4, 4, 4) and [m.training for m in net.modules()] == modes
