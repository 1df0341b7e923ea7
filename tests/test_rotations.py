import pytest
import torch
import torchvision.transforms.functional as TF

import rotlib
from rotlib.rotations import random_rotation, rotate, rotate_batch, rotate_by_angle, rotation_angles


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, -1, 7])
@pytest.mark.parametrize("shape", [(3, 32, 32), (2, 1, 28, 28), (5, 5)])
def test_rotate_matches_torchvision(k, shape):
    x = torch.rand(shape)
    expected = TF.rotate(x if x.dim() > 2 else x[None], 90 * k)
    assert torch.equal(rotate(x, k), expected if x.dim() > 2 else expected[0])


def test_rotate_uint8_and_composition():
    x = torch.randint(0, 256, (4, 3, 9, 9), dtype=torch.uint8)
    assert torch.equal(rotate(rotate(rotate(rotate(x, 1), 1), 1), 1), x)
    assert torch.equal(rotate(rotate(x, 1), 2), rotate(x, 3))
    assert torch.equal(rotate(rotate(x, 3), 1), x)
    assert not torch.equal(rotate(x, 1), x)


def test_rotate_is_counter_clockwise():
    x = torch.zeros(1, 3, 3)
    x[0, 0, 2] = 1  # top-right corner
    assert rotate(x, 1)[0, 0, 0] == 1  # a quarter turn CCW moves it to the top-left


def test_every_public_name_is_importable():
    """What ``rotlib.__all__`` promises exists (a renamed or moved function fails here, not in a notebook)."""
    missing = [name for name in rotlib.__all__ if not hasattr(rotlib, name)]
    assert not missing and len(rotlib.__all__) == len(set(rotlib.__all__))


def test_rotate_non_square_error():
    with pytest.raises(ValueError, match="square.*center_crop_square"):
        rotate(torch.zeros(1, 3, 32, 28), 1)


def test_unknown_rotation_set():
    with pytest.raises(ValueError, match="unknown rotation set '3'.*'4'"):
        rotate_batch(torch.zeros(2, 1, 8, 8), "3")


@pytest.mark.parametrize("name,k", [("4", 4), ("8", 8), ("2", 2), ("2-90/270", 2)])
def test_rotate_batch_labels_line_up(name, k):
    x = torch.rand(5, 3, 16, 16)
    rotated, labels = rotate_batch(x, name)
    assert rotated.shape == (5 * k, 3, 16, 16) and labels.shape == (5 * k,)
    angles = rotation_angles(name)
    for i in range(len(rotated)):
        r, n = labels[i].item(), i % 5
        assert torch.allclose(rotated[i], rotate_by_angle(x[n], angles[r]))
    assert torch.equal(torch.bincount(labels), torch.full((k,), 5))


def test_45_degrees_is_interpolated():
    x = torch.rand(1, 1, 16, 16)
    y = rotate_by_angle(x, 45)
    assert y[0, 0, 0, 0] == 0  # black corner: the artifact 90-degree multiples avoid
    assert torch.equal(rotate_by_angle(x, 90), rotate(x, 1))


def test_random_rotation_labels_line_up():
    x = torch.rand(64, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    out, labels = random_rotation(x, "4", generator=g)
    for i in range(64):
        assert torch.equal(out[i], rotate(x[i], labels[i].item()))
    assert len(labels.unique()) == 4


def test_rotate_needs_whole_quarter_turns():
    x = torch.rand(2, 1, 5, 5)
    with pytest.raises(ValueError, match="whole number.*rotate_by_angle"):
        rotate(x, 1.7)
    assert torch.equal(rotate(x, 2.0), rotate(x, 2)) and torch.equal(rotate(x, torch.tensor(3)), rotate(x, 3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_rotate_by_angle_refuses_non_finite(bad):
    with pytest.raises(ValueError, match="finite"):
        rotate_by_angle(torch.rand(1, 1, 8, 8), bad)


@pytest.mark.parametrize("name,k", [("4", 4), ("8", 8)])
def test_rotate_batch_of_nothing(name, k):
    rotated, labels = rotate_batch(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), name)
    assert rotated.shape == (0, 3, 8, 8) and rotated.dtype == torch.uint8 and labels.shape == (0,)


def test_single_image_is_not_taken_for_a_batch():
    one = torch.rand(3, 8, 8)  # (C, H, W): would be 3 one-channel "images"
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*unsqueeze\(0\)"):
        rotate_batch(one)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_rotation(one)
    assert rotate_batch(one.unsqueeze(0))[0].shape == (4, 3, 8, 8)


@pytest.mark.parametrize("shape", [(8, 3, 32, 32), (3, 32, 32), (1, 28, 28)])
@pytest.mark.parametrize("angle", [45, 135, 315, 17.5, -30])
def test_interpolated_rotation_equals_torchvision(shape, angle):
    """rotate_by_angle caches torchvision's sampling grid per angle; the pixels must be torchvision's, bit for bit."""
    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ref = TF.rotate(x.float(), float(angle), interpolation=TF.InterpolationMode.BILINEAR).round().clamp(0, 255)
    assert torch.equal(rotate_by_angle(x, angle), ref.to(torch.uint8))
    xf = x.float() / 255
    assert torch.equal(rotate_by_angle(xf, angle), TF.rotate(xf, float(angle), interpolation=TF.InterpolationMode.BILINEAR))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_interpolated_rotation_keeps_the_dtype_like_torchvision(dtype):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)).to(dtype)
    out = rotate_by_angle(x, 45)
    assert out.dtype == dtype
    assert torch.equal(out, TF.rotate(x, 45.0, interpolation=TF.InterpolationMode.BILINEAR))

