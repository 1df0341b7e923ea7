import pytest
import torch

import rotlib
from rotlib.attention import (attention_map, equivariance_score, map_correlation, model_equivariance,
                              normalize_maps)
from rotlib import NetworkInNetwork


def test_attention_map_known_values():
    f = torch.zeros(1, 2, 2, 2)
    f[0, 0] = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    f[0, 1] = torch.tensor([[-1.0, 1.0], [2.0, 0.0]])
    assert torch.equal(attention_map(f, 1)[0], torch.tensor([[2.0, 3.0], [2.0, 3.0]]))
    assert torch.equal(attention_map(f, 2)[0], torch.tensor([[2.0, 5.0], [4.0, 9.0]]))
    assert torch.equal(attention_map(f, 4)[0], torch.tensor([[2.0, 17.0], [16.0, 81.0]]))
    with pytest.raises(ValueError, match="positive"):
        attention_map(f, 0)


def test_normalize_maps():
    m = normalize_maps(torch.tensor([[[1.0, 3.0], [5.0, 9.0]]]), size=8)
    assert m.shape == (1, 8, 8) and m.min() == 0 and m.max() == 1


def test_equivariant_network_scores_one():
    conv = torch.nn.Conv2d(1, 3, 3, padding=1, bias=False)
    with torch.no_grad():  # rotation-symmetric kernels make the conv exactly equivariant to quarter turns
        k = torch.rand(3, 1, 3, 3)
        conv.weight.copy_(k + k.rot90(1, (-2, -1)) + k.rot90(2, (-2, -1)) + k.rot90(3, (-2, -1)))
    x = torch.rand(6, 1, 12, 12)
    assert equivariance_score(conv, x, p=2) == pytest.approx(1.0, abs=1e-6)


def test_shuffled_map_scores_near_zero():
    torch.manual_seed(0)
    a = torch.rand(200, 8, 8)
    shuffled = a.flatten(1)[:, torch.randperm(64)].view_as(a)
    assert abs(map_correlation(a, shuffled).mean().item()) < 0.05
    assert map_correlation(a, 2 * a + 1).mean().item() == pytest.approx(1.0)

    def scrambled(x):  # a "network" whose maps ignore where things are
        return torch.rand(x.shape[0], 4, 8, 8)
    assert abs(equivariance_score(scrambled, torch.rand(100, 1, 8, 8))) < 0.05


def test_model_equivariance_in_range():
    m = NetworkInNetwork(3, 16, 1, 4)
    s = model_equivariance(m, torch.rand(4, 1, 28, 28), "conv2", p=2)
    assert -1 <= s <= 1


def test_public_attention_name():
    assert rotlib.attention_map is attention_map
