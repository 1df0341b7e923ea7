import numpy as np
import pytest
import torch
from PIL import Image

from rotlib import DatasetNotFoundError, load_dataset
from rotlib import data as D


def test_cifar_loader_reads_written_files(cifar_root):
    train, test = load_dataset("cifar10", "train", download=False), load_dataset("cifar10", "test", download=False)
    assert train.images.shape == (200, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (40, 3, 32, 32)
    assert train.labels.dtype == torch.long and int(train.labels.max()) < 10
    assert train.images[:, :, :8].float().mean() > train.images[:, :, 24:].float().mean() + 100  # the bright band is on top
    x = train.normalize(train.images[:4])
    assert x.dtype == torch.float32 and x.shape == (4, 3, 32, 32)


def test_missing_dataset_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "SYSTEM_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=tmp_path, download=False)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist-c", root=tmp_path)


def test_fashion_mnist_idx_reader(tmp_path, monkeypatch):
    import gzip
    monkeypatch.setattr(D, "SYSTEM_FASHION_MNIST", tmp_path / "nowhere")
    d = tmp_path / "fashion-mnist"
    d.mkdir()
    imgs = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    for split, (fi, fl) in D._FMNIST_FILES.items():
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


def test_subsets_are_stratified_and_reproducible(cifar_root):
    train = load_dataset("cifar10", download=False)
    counts = torch.bincount(train.labels, minlength=10)
    k = int(counts.min())
    a, b = D.stratified_subset(train, k, seed=1), D.stratified_subset(train, k, seed=1)
    assert torch.equal(a.images, b.images)
    assert torch.bincount(a.labels, minlength=10).tolist() == [k] * 10
    assert not torch.equal(a.images, D.stratified_subset(train, k, seed=2).images) or k == int(counts.max())
    first = D.first_per_class(train, 2)
    assert torch.bincount(first.labels, minlength=10).tolist() == [2] * 10
    with pytest.raises(ValueError, match="has only"):
        D.stratified_subset(train, 10_000)


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
