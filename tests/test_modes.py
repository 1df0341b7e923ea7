"""rotlib.modes.evaluating: eval mode inside the block, each module's own mode back afterwards."""
import pytest
import torch
from torch import nn

from rotlib.modes import evaluating


def mixed():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.Dropout(), nn.BatchNorm2d(4)))
    net.train()
    net[1].eval()                     # e.g. a frozen backbone's BatchNorm kept in eval mode
    net[2][0].eval()
    return net


def modes(net):
    return [m.training for m in net.modules()]


def test_mixed_modes_come_back():
    net = mixed()
    before = modes(net)
    assert len(set(before)) == 2
    with evaluating(net) as inside:
        assert inside is net and not any(modes(net))
    assert modes(net) == before


def test_modes_come_back_after_an_error():
    net = mixed()
    before = modes(net)
    with pytest.raises(RuntimeError):
        with evaluating(net):
            net(torch.zeros(1, 5, 8, 8))          # wrong channel count
    assert modes(net) == before
