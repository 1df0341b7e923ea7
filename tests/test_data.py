import numpy as np
import pytest
import torch
from PIL import Image

from rotlib import DatasetNotFoundError, load_dataset
from rotlib import data as D
from rotlib.data import fashion_mnist


def test_cifar_loader_reads_written_files(cifar_root):
    train, test = load_dataset("cifar10", "train", download=False), load_dataset("cifar10", "test", download=False)
    assert train.images.shape == (200, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (40, 3, 32, 32)
    assert train.labels.dtype == torch.long and int(train.labels.max()) < 10
    assert train.images[:, :, :8].float().mean() > train.images[:, :, 24:].float().mean() + 100  # the bright band is on top
    x = train.normalize(train.images[:4])
    assert x.dtype == torch.float32 and x.shape == (4, 3, 32, 32)


def test_missing_dataset_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(D.fashion_mnist, "SYSTEM_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=tmp_path, download=False)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist-c", root=tmp_path)


def test_fashion_mnist_idx_reader(tmp_path, monkeypatch):
    import gzip
    monkeypatch.setattr(D.fashion_mnist, "SYSTEM_FASHION_MNIST", tmp_path / "nowhere")
    d = tmp_path / "fashion-mnist"
    d.mkdir()
    imgs = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    for split, (fi, fl) in fashion_mnist._FMNIST_FILES.items():
        with gzip.open(d / fi, "wb") as f:
            f.write(bytes([0, 0, 8, 3]) + (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + imgs.tobytes())
        with gzip.open(d / fl, "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 1, 9]))
    ds = load_dataset("fashion-mnist", "test", root=tmp_path, download=False)
    assert ds.images.shape == (3, 1, 28, 28) and ds.labels.tolist() == [7, 1, 9]
    assert torch.equal(ds.images[:, 0], torch.from_numpy(imgs))


def test_image_folder_crops_and_converts(tmp_path):
    root = tmp_path / "photos"
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
    Image.new("RGBA", (60, 40), (255, 0, 0, 0)).save(root / "cats" / "a.png")      # transparent: white
    Image.new("L", (30, 50), 128).save(root / "cats" / "b.png")                      # grayscale
    for i in range(3):
        Image.new("RGB", (64, 48), (0, 0, 255)).save(root / "dogs" / f"{i}.jpg")
    train = load_dataset(f"folder:{root}", "train", size=16)
    test = load_dataset(f"folder:{root}", "test", size=16)
    assert train.classes == ["cats", "dogs"]
    assert train.images.shape[1:] == (3, 16, 16) and len(train) + len(test) == 5 and len(test) == 1
    all_imgs = torch.cat([train.images, test.images])
    assert (all_imgs.view(len(all_imgs), 3, -1).float().mean(-1) == torch.tensor([255.0, 255, 255])).all(1).any()


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no images"):
        load_dataset(f"folder:{tmp_path / 'empty'}")


def test_first_per_class_takes_the_first_images_of_each_class(cifar_root):
    train = load_dataset("cifar10", download=False)
    first = D.first_per_class(train, 2)
    assert torch.bincount(first.labels, minlength=10).tolist() == [2] * 10
    for c in range(10):                                   # the first two of class c, in the split's order
        expected = train.images[(train.labels == c).nonzero().flatten()[:2]]
        assert torch.equal(first.images[first.labels == c], expected)
    with pytest.raises(ValueError, match="labelled images per class requested"):
        D.first_per_class(train, 10_000)


def test_augment_is_crop_and_flip():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).view(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    y = D.augment(x, padding=0, flip=True, generator=g)
    for i in range(2):
        assert torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1))
    z = D.augment(x, padding=2, flip=False, generator=g)
    assert z.shape == x.shape and z.dtype == torch.uint8


def test_center_crop_square():
    assert D.center_crop_square(torch.zeros(3, 20, 30)).shape == (3, 20, 20)


# ---------------------------------------------------------------- reference values
def test_normalize_exact_values():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2).contiguous()
    data = D.ImageData(images, torch.zeros(2, dtype=torch.long), ["x"], mean=(0.0, 0.1, 0.5), std=(0.5, 0.2, 0.25))
    x = data.normalize(images)
    expected = torch.tensor([(0 - 0.0) / 0.5, (0.2 - 0.1) / 0.2, (1 - 0.5) / 0.25]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    assert torch.allclose(x, expected, atol=1e-6)


def test_center_crop_square_takes_the_centre():
    wide = torch.arange(4 * 8).view(1, 4, 8)
    assert torch.equal(D.center_crop_square(wide), wide[..., :, 2:6])
    tall = torch.arange(7 * 3).view(7, 3)
    assert torch.equal(D.center_crop_square(tall), tall[2:5, :])


def _crop_offset(padded, out):
    """The (dy, dx) at which ``out`` is a window of ``padded``, or None."""
    h, w = out.shape[-2:]
    for dy in range(padded.shape[-2] - h + 1):
        for dx in range(padded.shape[-1] - w + 1):
            if torch.equal(padded[..., dy:dy + h, dx:dx + w], out):
                return dy, dx
    return None


def test_random_crop_is_a_window_at_a_random_offset():
    x = torch.arange(1, 37, dtype=torch.uint8).view(1, 1, 6, 6).repeat(64, 1, 1, 1)  # distinct, non-zero pixels
    padded = torch.nn.functional.pad(x[0], (2, 2, 2, 2))
    out = D.augment(x, padding=2, flip=False, generator=torch.Generator().manual_seed(0))
    offsets = [_crop_offset(padded, out[i]) for i in range(64)]
    assert None not in offsets                      # every output is one window of the zero-padded image
    assert len(set(offsets)) >= 15                  # ... at offsets spread over the 5 x 5 possible ones
    assert {dy for dy, _ in offsets} == set(range(5)) and {dx for _, dx in offsets} == set(range(5))


def test_flip_is_random_and_horizontal():
    x = torch.arange(64 * 2 * 3 * 3, dtype=torch.uint8).view(64, 2, 3, 3)
    y = D.augment(x, padding=0, flip=True, generator=torch.Generator().manual_seed(0))
    same = [torch.equal(y[i], x[i]) for i in range(64)]
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(64)]
    assert all(a or b for a, b in zip(same, flipped)) and 16 < sum(flipped) < 48


def test_augment_refuses_a_single_image():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        D.augment(torch.zeros(3, 8, 8, dtype=torch.uint8))


# ---------------------------------------------------------------- subsets that cannot be honoured
def test_per_class_subsets_never_shrink_silently(cifar_root):
    train = load_dataset("cifar10", download=False)
    fewest = int(torch.bincount(train.labels, minlength=10).min())
    assert len(D.first_per_class(train, fewest)) == 10 * fewest
    with pytest.raises(ValueError, match=f"{fewest + 1} labelled images per class requested.*per_class={fewest}"):
        D.first_per_class(train, fewest + 1)
    for bad in (0, -3, 1.5):
        with pytest.raises(ValueError, match="per_class.*at least 1"):
            D.first_per_class(train, bad)
    with pytest.raises(ValueError, match="at least 1"):
        D.random_subset(train, 0)
    with pytest.raises(ValueError, match="at least 1"):
        D.random_subset(train, -5)
    assert len(D.random_subset(train, 7)) == 7 and D.random_subset(train, 10 ** 6) is train  # "at most n"


# ---------------------------------------------------------------- folder:PATH
def _save(path, color, size=(8, 8), mode="RGB", **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **kw)


def test_folder_applies_exif_orientation(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))              # stored: left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6                                    # "rotate 90 degrees clockwise to display", as phones write
    (tmp_path / "p").mkdir()
    im.save(tmp_path / "p" / "phone.jpg", exif=exif, quality=95)
    x = D.load_image(tmp_path / "p" / "phone.jpg", 16).float()
    assert x.shape == (3, 16, 16)
    top, bottom = x[:, :4].mean((1, 2)), x[:, -4:].mean((1, 2))
    assert top[0] > 200 and top[2] < 50 and bottom[2] > 200 and bottom[0] < 50  # upright: red on top, blue below


def test_folder_scales_16_bit_images(tmp_path):
    Image.fromarray(np.full((8, 8), 128 * 257, dtype=np.uint16)).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    x = D.load_image(tmp_path / "g16.png", 4)
    assert x.dtype == torch.uint8 and (x == 128).all()


def test_folder_test_split_maps_classes_by_name(tmp_path):
    colors = {"apple": (255, 0, 0), "banana": (0, 255, 0), "cherry": (0, 0, 255)}
    for name, color in colors.items():
        for i in range(2):
            _save(tmp_path / "train" / name / f"{i}.png", color)
    for name in ("apple", "cherry"):                    # test/ has no banana
        _save(tmp_path / "test" / name / "0.png", colors[name])
    train = load_dataset(f"folder:{tmp_path}", "train", size=8)
    test = load_dataset(f"folder:{tmp_path}", "test", size=8)
    assert train.classes == test.classes == ["apple", "banana", "cherry"]
    for x, y in zip(test.images, test.labels):
        assert tuple(x[:, 0, 0].tolist()) == colors[test.classes[y]]
    assert sorted(test.labels.tolist()) == [0, 2]
    # both splits are normalised with the training split's statistics
    assert test.mean == train.mean and test.std == train.std
    pixels = train.images.float() / 255
    assert train.mean == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist())
    _save(tmp_path / "test" / "durian" / "0.png", (9, 9, 9))
    with pytest.raises(ValueError, match="durian"):
        load_dataset(f"folder:{tmp_path}", "test", size=8)


def test_folder_checks_every_file_before_training(tmp_path):
    for i in range(3):
        _save(tmp_path / "train" / "a" / f"{i}.jpg", (200, 0, 0))
        _save(tmp_path / "test" / "a" / f"{i}.jpg", (200, 0, 0))
    good = (tmp_path / "test" / "a" / "0.jpg").read_bytes()
    (tmp_path / "test" / "a" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "test" / "a" / "empty.png").write_bytes(b"")
    (tmp_path / "test" / "a" / ".hidden.jpg").write_bytes(b"not an image")   # e.g. macOS ._ files: ignored
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable.*empty\.png.*truncated\.jpg"):
        train = load_dataset(f"folder:{tmp_path}", "train")   # the broken *test* files are found now
    assert len(train) == 3 and len(train.meta["skipped"]) == 2
    with pytest.warns(UserWarning):
        assert len(load_dataset(f"folder:{tmp_path}", "test")) == 3


def test_folder_refuses_empty_classes_and_splits(tmp_path):
    _save(tmp_path / "two" / "a" / "0.png", (1, 2, 3))
    (tmp_path / "two" / "b").mkdir()
    with pytest.raises(ValueError, match=r"\['b'\].*no readable training images"):
        load_dataset(f"folder:{tmp_path / 'two'}")
    _save(tmp_path / "one" / "only.png", (1, 2, 3))
    with pytest.raises(ValueError, match="test split.*no images"):
        load_dataset(f"folder:{tmp_path / 'one'}", "train")
    _save(tmp_path / "split" / "train" / "a" / "0.png", (1, 2, 3))
    (tmp_path / "split" / "test" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="test split.*no images"):
        load_dataset(f"folder:{tmp_path / 'split'}", "train")


def test_folder_holdout_is_reproducible_and_keeps_every_class(tmp_path):
    for c, n in (("a", 1), ("b", 5), ("c", 10)):
        for i in range(n):
            _save(tmp_path / c / f"{i}.png", (10 * i, 0, 0))
    train, test = load_dataset(f"folder:{tmp_path}", "train"), load_dataset(f"folder:{tmp_path}", "test")
    assert len(train) + len(test) == 16 and torch.bincount(test.labels, minlength=3).tolist() == [0, 1, 2]
    assert set(train.labels.tolist()) == {0, 1, 2}
    assert torch.equal(load_dataset(f"folder:{tmp_path}", "test").images, test.images)


def test_folder_fingerprint_follows_contents_and_location(tmp_path):
    _save(tmp_path / "a" / "x" / "0.png", (1, 2, 3))
    first = D.fingerprint(f"folder:{tmp_path / 'a'}")
    assert D.fingerprint(f"folder:{tmp_path / 'a' / 'x' / '..'}") == first        # same folder, other spelling
    _save(tmp_path / "a" / "x" / "1.png", (1, 2, 3))
    second = D.fingerprint(f"folder:{tmp_path / 'a'}")
    assert second != first
    import shutil
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert D.fingerprint(f"folder:{tmp_path / 'b'}")["root"] != second["root"]
    assert D.fingerprint("cifar10") is None


def test_folder_skips_images_over_the_pixel_limit_like_unreadable_ones(tmp_path):
    """An oversized image (here a 30000x30000 PNG bomb of 0.9 MB) is refused from its header and skipped with
    the warning that names unreadable files; ``max_pixels`` sets the limit."""
    from test_decoding import png_bomb
    for i in range(3):
        _save(tmp_path / "a" / f"{i}.png", (10 * i, 0, 0), size=(20, 10))
    png_bomb(tmp_path / "a" / "bomb.png")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable.*bomb\.png.*30000x30000.*limit of 89,478,485"):
        train = load_dataset(f"folder:{tmp_path}", "train", size=8)
    assert len(train) == 2 and "bomb.png" in train.meta["skipped"][0]
    with pytest.warns(UserWarning, match=r"skipped 4 unreadable.*20x10 = 200 pixels, more than the limit of 199"):
        with pytest.raises(ValueError, match="no readable training images"):
            D.load_folder(tmp_path, "train", size=8, max_pixels=199)


def test_folder_survives_symlink_loops(tmp_path):
    """Links to a parent folder, to themselves and to nothing: not followed, not files; the images are read once."""
    for c in ("a", "b"):
        for i in range(3):
            _save(tmp_path / c / f"{i}.png", (40 * i, 0, 0))
    (tmp_path / "a" / "loop").symlink_to("..")
    (tmp_path / "b" / "deeper").symlink_to("../b")
    (tmp_path / "a" / "self.jpg").symlink_to("self.jpg")
    (tmp_path / "b" / "dangling.png").symlink_to("missing.png")
    train, test = load_dataset(f"folder:{tmp_path}", "train", size=8), load_dataset(f"folder:{tmp_path}", "test", size=8)
    assert len(train) + len(test) == 6 and train.classes == ["a", "b"] and train.meta["skipped"] == []
    assert D.fingerprint(f"folder:{tmp_path}")["files"]


def test_environment_is_read_when_loading(tmp_path, monkeypatch):
    """ROTLIB_DATA and ROTLIB_OFFLINE take effect when a dataset is loaded, not when rotlib is imported."""
    monkeypatch.setenv("ROTLIB_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("ROTLIB_OFFLINE", "1")
    assert D.DEFAULT_ROOT == tmp_path / "elsewhere"
    with pytest.raises(DatasetNotFoundError, match=r"elsewhere.*download disabled"):
        load_dataset("cifar10")
    monkeypatch.setenv("ROTLIB_HOME", str(tmp_path / "home"))
    assert D.SHIPPED_ROOT == tmp_path / "home" / "data" / "cifar10-5k"
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "home")):
        load_dataset("cifar10-5k")
