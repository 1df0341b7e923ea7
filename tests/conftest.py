"""Shared fixtures: a throw-away cache, CIFAR-format files written by the tests, a tiny profile."""
import os
import pickle

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from rotlib.profiles import Profile  # noqa: E402


def write_cifar(root, n_train_per_batch=40, n_test=40, seed=0):
    """Write CIFAR-10 python-format batches: images with a bright top band, so "which way is up" is learnable."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)

    def batch(n):
        x = rng.integers(0, 60, size=(n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n)
        x[:, :, :8, :] += 150
        for i, c in enumerate(labels):       # a class-dependent colour in one channel
            x[i, c % 3, 12:20, 12:20] = 40 + 20 * c
        return {"data": x.reshape(n, -1), "labels": labels.tolist(), "batch_label": "test", "filenames": []}

    for i in range(1, 6):
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(n_train_per_batch), f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump(batch(n_test), f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["c%d" % i for i in range(10)]}, f)
    return root


@pytest.fixture(autouse=True, scope="module")
def unit_tests_may_train():
    """make test sets ROTLIB_SHIPPED_ONLY=1 for the notebooks it runs after the unit tests, which train tiny models:
    unset for each test module (module scope, so before its module-scoped fixtures, e.g. the torchrun runs), and
    set again after it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ROTLIB_SHIPPED_ONLY", raising=False)
        yield


@pytest.fixture(autouse=True)
def results_folder(tmp_path, monkeypatch):
    """Every test records its quantities in a throw-away results folder, never in the checkout's results/."""
    path = tmp_path / "recorded-results"
    monkeypatch.setenv("ROTLIB_RESULTS", str(path))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("ROTLIB_CACHE", str(path))
    return path


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    root = write_cifar(tmp_path / "data")
    monkeypatch.setenv("ROTLIB_DATA", str(root))
    return root


@pytest.fixture
def tiny(cifar_root, cache):
    """A profile small enough to train in seconds on the CIFAR-format files."""
    return Profile(name="tiny", dataset="cifar10", num_blocks=3, width=16, n_train=None, n_test=None, batch_size=20,
                   rotnet_epochs=2, classifier_epochs=2, classifier_batch_size=40, supervised_epochs=1, min_steps=0,
                   augment=True, precompute_features=True, device="cpu")
