import pytest
import torch

from rotlib.attention import attention_map, equivariance_score, map_correlation, normalize_maps
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
    cells = normalize_maps(torch.tensor([[[1.0, 3.0], [5.0, 9.0]]]), size=8, mode="nearest")
    assert torch.equal(cells[0, :4, :4], torch.zeros(4, 4)) and torch.equal(cells[0, 4:, 4:], torch.ones(4, 4))
    flat = normalize_maps(torch.full((1, 4, 4), 3.0) + 1e-7 * torch.rand(1, 4, 4))   # rounding noise is not a pattern
    assert torch.equal(flat, torch.zeros(1, 4, 4))


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


def model_equivariance(model, images, block, p=2):
    """The reference: :func:`equivariance_score` of one block, one rotation at a time."""
    return equivariance_score(lambda x: model(x, out_feat_keys=[block])[0], images, p)


def test_block_features_leave_the_models_modes_alone():
    from rotlib.attention import block_features
    m = NetworkInNetwork(3, 16, 1, 4).train()
    m.blocks[0].eval()                                   # mixed modes, as in a probe on a frozen block
    before = [x.training for x in m.modules()]
    block_features(m, torch.rand(2, 1, 28, 28), ["conv1"])
    assert [x.training for x in m.modules()] == before


def test_ring_and_border_share():
    from rotlib.attention import border_share, ring_mask, uniform_border_share
    assert ring_mask(8).sum() == 28 and ring_mask(16).sum() == 256 - 144   # 1 cell at 8x8, 2 cells at 16x16
    assert uniform_border_share(8) == uniform_border_share(16) == pytest.approx(28 / 64)
    flat, zero = torch.ones(2, 8, 8), torch.zeros(1, 8, 8)
    ring_only = ring_mask(8).float()[None]
    assert border_share(flat).tolist() == pytest.approx([28 / 64] * 2)
    assert border_share(zero).item() == pytest.approx(28 / 64)          # no mass: counted as flat
    assert border_share(ring_only).item() == pytest.approx(1.0)
    assert border_share(1 - ring_only).item() == pytest.approx(0.0)


def _trained_like(seed=0):
    """A small NIN whose batch norms have non-zero shifts, as after training (at init they map 0 to 0)."""
    torch.manual_seed(seed)
    m = NetworkInNetwork(3, 16, 3, 4)
    for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.bias.data.uniform_(0.1, 0.5)
    return m.eval()


def test_zero_padding_frame_and_its_removal():
    """A mean-colour image (all zeros) lights up the border only through the zero padding: without it the maps are flat."""
    from rotlib.attention import attention_map, block_features, border_share, uniform_border_share, with_padding
    m = _trained_like()
    grey = torch.zeros(1, 3, 32, 32)
    padded = block_features(m, grey, ["conv2", "conv3"])
    unpadded = block_features(with_padding(m), grey, ["conv2", "conv3"])
    for b in ("conv2", "conv3"):
        a, u = attention_map(padded[b]), attention_map(unpadded[b])
        assert a.std() > 1e-3 * a.mean()                                 # a frame: not flat
        assert u.std() <= 1e-5 * u.mean()                                # flat: nothing left at the border
        assert border_share(u).item() == pytest.approx(uniform_border_share(8), abs=1e-5)
    assert all(c.padding_mode == "zeros" for c in m.modules() if isinstance(c, torch.nn.Conv2d))   # original untouched


def test_equivariance_scores_match_the_single_score():
    from rotlib.attention import equivariance_scores
    m = _trained_like(1).eval()
    x = torch.randn(6, 3, 32, 32)
    scores = equivariance_scores(m, x, ["conv1", "conv3"], ps=(1, 4), batch_size=4, interior=True)
    for b in ("conv1", "conv3"):
        for p in (1, 4):
            assert scores[(b, p)] == pytest.approx(model_equivariance(m, x, b, p), abs=1e-5)
            assert -1 <= scores[(b, p, "interior")] <= 1


def test_attention_widget_lists_each_image_once():
    from rotlib.data import ImageData
    from rotlib.widgets import AttentionWidget
    data = ImageData(torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8), torch.arange(5), ["a"] * 5,
                     (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    w = AttentionWidget({"net": NetworkInNetwork(3, 16, 3, 4)}, data, indices=[3, 0, 3, 1, 0, 1, 2])
    assert w.indices == [3, 0, 1, 2] and list(w.image.options) == [3, 0, 1, 2]
