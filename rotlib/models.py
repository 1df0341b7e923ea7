"""Networks: the NetworkInNetwork RotNet and the classifiers used to evaluate it.

The architecture follows the official code (gidariss/FeatureLearningRotNet,
architectures/NetworkInNetwork.py and NonLinearClassifier.py) for CIFAR-10:
each block is three conv+BN+ReLU layers (one kxk, two 1x1); block 1 ends
with a max-pool, block 2 with an average pool, blocks 3+ have no pool; the
head is a global average pool and a linear layer. With ``width=192`` and
``num_blocks=4`` it has exactly the official 1,411,140 parameters.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .checks import whole_number


class BasicBlock(nn.Sequential):
    """conv (no bias, "same" padding) -> BatchNorm -> ReLU."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int):
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, padding=(kernel_size - 1) // 2, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU(inplace=True),
        )


def _official_init(module: nn.Module) -> None:
    """Conv weights ~ N(0, sqrt(2 / (k*k*out))); BN weight 1, bias 0; linear bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0.0, math.sqrt(2.0 / n))
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:
            m.weight.data.fill_(1.0)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear) and m.bias is not None:
            m.bias.data.zero_()


class NetworkInNetwork(nn.Module):
    """The RotNet backbone and head (paper Sec. 3.1, Table 1).

    Args:
        num_blocks: conv blocks (3, 4 or 5 in the paper; at least 3 here).
        width: channels of the wide layers (192 in the paper); the narrow
            layers of block 1 (160, 96) scale with it.
        in_channels: 3 for RGB, 1 for gray images.
        num_classes: K rotations for the pretext task, or the number of
            object classes for the supervised baseline.

    ``model(x)`` returns logits; ``model(x, out_feat_keys=["conv2"])`` returns
    the listed block outputs (after their pooling) instead.
    """

    def __init__(self, num_blocks: int = 4, width: int = 192, in_channels: int = 3, num_classes: int = 4):
        super().__init__()
        num_blocks = whole_number(num_blocks, "num_blocks", 3, " (the paper uses 3, 4 or 5)")
        width = whole_number(width, "width", 2, " (192 in the paper; the narrowest layer has width/2 channels)")
        in_channels = whole_number(in_channels, "in_channels", 1, " (3 for RGB, 1 for gray)")
        num_classes = whole_number(num_classes, "num_classes", 1)
        self.config = dict(num_blocks=num_blocks, width=width, in_channels=in_channels, num_classes=num_classes)
        w, w2, w3 = width, round(width * 160 / 192), round(width * 96 / 192)
        blocks: list[nn.Module] = [
            nn.Sequential(BasicBlock(in_channels, w, 5), BasicBlock(w, w2, 1), BasicBlock(w2, w3, 1),
                          nn.MaxPool2d(3, 2, 1)),
            nn.Sequential(BasicBlock(w3, w, 5), BasicBlock(w, w, 1), BasicBlock(w, w, 1),
                          nn.AvgPool2d(3, 2, 1)),
        ]
        blocks += [nn.Sequential(BasicBlock(w, w, 3), BasicBlock(w, w, 1), BasicBlock(w, w, 1))
                   for _ in range(num_blocks - 2)]
        self.blocks = nn.ModuleList(blocks)
        self.block_names = [f"conv{i + 1}" for i in range(num_blocks)]
        self.classifier = nn.Linear(w, num_classes)
        _official_init(self)


    def _index(self, name: str) -> int:
        if name not in self.block_names:
            raise KeyError(f"unknown block {name!r}; this network has {self.block_names}")
        return self.block_names.index(name)

    def forward(self, x: torch.Tensor, out_feat_keys: list[str] | None = None):
        wanted = set(out_feat_keys or [])
        for n in wanted:
            self._index(n)
        last = max((self._index(n) for n in wanted), default=len(self.blocks) - 1)
        feats = {}
        for i, block in enumerate(self.blocks[: last + 1]):
            x = block(x)
            feats[self.block_names[i]] = x
        if out_feat_keys is not None:
            return [feats[n] for n in out_feat_keys]
        return self.classifier(x.mean(dim=(-2, -1)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class LinearClassifier(nn.Sequential):
    """Linear probe: flatten -> BatchNorm (no affine, a fixed rescaling at test time) -> Linear."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__(nn.Flatten(), nn.BatchNorm1d(in_features, affine=False), nn.Linear(in_features, num_classes))


class NonLinearClassifier(nn.Sequential):
    """The paper's non-linear classifier ("MultLayer"): flatten -> [Linear(no bias) -> BN -> ReLU] x 2 -> Linear."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 200):
        super().__init__(
            nn.Flatten(),
            nn.Linear(in_features, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        _official_init(self)


class ConvClassifier(nn.Sequential):
    """The paper's conv classifier ("NIN_ConvBlock3"): a NIN block (3x3, 1x1, 1x1) -> global average pool -> Linear."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 192):
        super().__init__(
            BasicBlock(in_channels, width, 3), BasicBlock(width, width, 1), BasicBlock(width, width, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
        )
        _official_init(self)


CLASSIFIERS = ("linear", "nonlinear", "conv")


@torch.no_grad()
def feature_shape(backbone: NetworkInNetwork, block: str, image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape (C, H, W) of ``block``'s features for images of ``image_shape``.

    Runs one blank image on the backbone's own device, in eval mode (so no
    BatchNorm statistics change), and restores the backbone's mode after.
    """
    device = next(backbone.parameters()).device
    modes = {m: m.training for m in backbone.modules()}
    try:
        return tuple(backbone.eval()(torch.zeros(1, *image_shape, device=device), out_feat_keys=[block])[0].shape[1:])
    finally:
        for m, mode in modes.items():
            m.training = mode


def make_classifier(kind: str, feature_shape: tuple[int, ...], num_classes: int, width: int = 192) -> nn.Module:
    """Build a classifier for features of shape (C, H, W)."""
    if kind == "linear":
        return LinearClassifier(math.prod(feature_shape), num_classes)
    if kind == "nonlinear":
        return NonLinearClassifier(math.prod(feature_shape), num_classes)
    if kind == "conv":
        return ConvClassifier(feature_shape[0], num_classes, width)
    raise ValueError(f"unknown classifier {kind!r}; choose one of {CLASSIFIERS}")


class FrozenFeatures(nn.Module):
    """A frozen copy of a backbone (eval mode, no gradients) that outputs one block's features.

    It holds its own copy: the caller's network keeps its trainability,
    device and mode, and can still be trained after probing.
    """

    def __init__(self, backbone: NetworkInNetwork, block: str):
        super().__init__()
        backbone._index(block)
        self.backbone, self.block = copy.deepcopy(backbone).eval(), block
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x):
        with torch.no_grad():
            return self.backbone(x, out_feat_keys=[self.block])[0]


class Probe(nn.Sequential):
    """Frozen copy of a backbone block -> trainable classifier (paper Sec. 3.1, Tables 1 and 3)."""

    def __init__(self, backbone: NetworkInNetwork, block: str, head: nn.Module):
        super().__init__(FrozenFeatures(backbone, block), head)
