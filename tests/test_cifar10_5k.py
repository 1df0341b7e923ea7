"""The shipped CIFAR-10 subset: exact files, right layout, and the same images as the full CIFAR-10's indices."""
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rotlib import data as D
from rotlib import load_dataset

CLASS_COUNTS = {"train": [508, 515, 478, 484, 527, 469, 497, 512, 518, 492],
                "test": [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]}


@pytest.mark.parametrize("split", ["train", "test"])
def test_shipped_files_have_their_checksums(split):
    path = D.SHIPPED_ROOT / f"{split}.npz"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == D.CIFAR10_5K_SHA256[split]


@pytest.mark.parametrize("split,n", [("train", 5000), ("test", 1000)])
def test_loader_gives_uint8_chw_images_with_labels(split, n):
    d = load_dataset("cifar10-5k", split)
    assert d.images.shape == (n, 3, 32, 32) and d.images.dtype == torch.uint8
    assert torch.bincount(d.labels, minlength=10).tolist() == CLASS_COUNTS[split]
    assert d.classes[3] == "cat" and d.mean == D.CIFAR10_MEAN
    with np.load(D.SHIPPED_ROOT / f"{split}.npz") as f:        # CHW is the HWC array transposed, not reshaped
        assert torch.equal(d.images[7].permute(1, 2, 0), torch.from_numpy(f["images"][7]))
        assert f["index"].tolist() == D.cifar10_5k_indices(split).tolist()
    if split == "test":
        assert d.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]   # cat, ship, ship, airplane, frog, ...


def test_missing_file_says_how_to_restore(tmp_path):
    with pytest.raises(D.DatasetNotFoundError, match="git checkout -- data/cifar10-5k"):
        D.load_cifar10_5k("train", root=tmp_path)


def _full_cifar_root() -> Path | None:
    for root in (os.environ.get("ROTLIB_DATA"), D.DEFAULT_ROOT):
        if root and (Path(root) / "cifar-10-batches-py" / "data_batch_5").exists():
            return Path(root)
    return None


@pytest.mark.skipif(_full_cifar_root() is None, reason="the full CIFAR-10 (cifar-10-batches-py) is not present")
@pytest.mark.parametrize("split", ["train", "test"])
def test_same_indices_of_the_full_cifar10_equal_the_shipped_images(split):
    full = D.load_cifar10(split, _full_cifar_root(), download=False)
    shipped = load_dataset("cifar10-5k", split)
    idx = torch.as_tensor(D.cifar10_5k_indices(split))
    assert torch.equal(full.images[idx], shipped.images) and torch.equal(full.labels[idx], shipped.labels)


def test_the_full_cifar_comparison_runs_on_cifar_format_files(tmp_path):
    """The check above, exercised on CIFAR-format batches written from the shipped images themselves."""
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    train, test = load_dataset("cifar10-5k", "train"), load_dataset("cifar10-5k", "test")
    rng = np.random.default_rng(0)
    for b in range(5):                 # batch b: the shipped 1,000 images first, then 9,000 filler images
        filler = rng.integers(0, 256, size=(9000, 3, 32, 32), dtype=np.uint8)
        x = np.concatenate([train.images[b * 1000:(b + 1) * 1000].numpy(), filler])
        y = train.labels[b * 1000:(b + 1) * 1000].tolist() + [0] * 9000
        with open(d / f"data_batch_{b + 1}", "wb") as f:
            pickle.dump({"data": x.reshape(len(x), -1), "labels": y}, f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({"data": test.images.numpy().reshape(1000, -1), "labels": test.labels.tolist()}, f)
    full = D.load_cifar10("train", tmp_path, download=False)
    idx = torch.as_tensor(D.cifar10_5k_indices("train"))
    assert len(full) == 50_000 and torch.equal(full.images[idx], train.images)
    assert not torch.equal(full.images[idx + 1], train.images)
