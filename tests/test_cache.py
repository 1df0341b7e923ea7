"""The cache: corrupt entries are set aside and recomputed, names stay inside the folder, concurrent use is safe."""
import rotlib
import threading
import time

import pytest
import torch
from PIL import Image
from torch import nn

from rotlib import cache as C
from rotlib import experiments as E
from rotlib.checkpoints import save_atomic
from rotlib.train import ClassificationTask, TensorData, TrainConfig, fit


def _build():
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def _trainer(calls, delay=0.0):
    def train(model, ckpt):
        calls.append(1)
        time.sleep(delay)
        with torch.no_grad():
            model.weight.add_(1.0)
        return {"epoch_loss": [0.5]}
    return train


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b""], ids=["truncated", "empty"])
def test_corrupt_model_is_named_set_aside_and_retrained(cache, damage):
    calls, logs = [], []
    first = C.cached_model("net", {"a": 1}, _build, _trainer(calls), log=logs.append)
    final = cache / f"{C.entry_stem('net', {'a': 1})}.pt"
    final.write_bytes(damage(final.read_bytes()))
    again = C.cached_model("net", {"a": 1}, _build, _trainer(calls), log=logs.append)
    assert calls == [1, 1] and torch.equal(again.weight, first.weight)
    assert any(str(final) in m and ".corrupt" in m and "training it again" in m for m in logs), logs
    assert (cache / f"{final.name}.corrupt").exists()
    assert torch.load(final, weights_only=True)["history"] == {"epoch_loss": [0.5]}   # loadable with weights_only
    C.cached_model("net", {"a": 1}, _build, _trainer(calls), log=logs.append)
    assert calls == [1, 1] and logs[-1].startswith("[cache] loaded")


def test_corrupt_checkpoint_restarts_training(tmp_path):
    data = TensorData(torch.randn(16, 3), torch.arange(16) % 2)
    ckpt = tmp_path / "run.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 not really a zip")
    logs = []
    hist = fit(nn.Linear(3, 2), data, ClassificationTask(), TrainConfig(epochs=2, batch_size=8), ckpt, device="cpu",
               progress=False, log=logs.append)
    assert len(hist["epoch_loss"]) == 2 and str(ckpt) in logs[0] and "unreadable" in logs[0]
    assert (tmp_path / "run.ckpt.corrupt").exists() and torch.load(ckpt, weights_only=True)["epoch"] == 2


def test_corrupt_result_is_named_and_recomputed(cache):
    logs = []
    assert C.cached_json("acc", {"k": 1}, lambda: 42.5, log=logs.append) == 42.5
    (path,) = cache.glob("acc-*.json")
    path.write_text(path.read_text()[:10])
    assert C.cached_json("acc", {"k": 1}, lambda: 43.0, log=logs.append) == 43.0
    assert str(path) in logs[-1] and "computing it again" in logs[-1]
    assert C.cached_json("acc", {"k": 1}, lambda: 0.0) == 43.0


@pytest.mark.parametrize("name", ["probe-folder:../../escape", "rotnet-folder:/abs/path/x", "..", "a/b\\c:d"])
def test_file_names_stay_inside_the_cache_folder(cache, tmp_path, name):
    C.cached_json(name, {"k": 1}, lambda: 1)
    (entry,) = [p for p in cache.iterdir() if p.suffix == ".json"]
    assert entry.parent == cache and "/" not in entry.name and not entry.name.startswith(".")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]      # nothing written next to or above it
    assert C.entry_stem(name, {"k": 1}) != C.entry_stem(name + "x", {"k": 1})
    assert C.entry_stem("rotnet-cifar10", {"k": 1}) == f"rotnet-cifar10-{C.config_key({'k': 1})}"  # old names kept


def test_interrupted_saves_leave_no_temporary_files(cache, monkeypatch):
    stem = C.entry_stem("net", {"a": 1})
    cache.mkdir()
    stale = cache / f"{stem}.pt.tmp4242"
    stale.write_bytes(b"half a file")
    other = cache / "other-entry.pt.tmp4242"
    other.write_bytes(b"someone else's")
    C.cached_model("net", {"a": 1}, _build, _trainer([]), log=lambda m: None)
    assert not stale.exists() and other.exists()

    def broken_save(obj, f, *a, **k):
        open(f, "wb").write(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"x": 1}, cache / "y.pt")
    assert not list(cache.glob("y.pt*"))


def test_two_requests_at_once_train_once(cache):
    calls, logs, models = [], [], []

    def ask():
        models.append(C.cached_model("net", {"a": 1}, _build, _trainer(calls, delay=1.0), log=logs.append))
    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and torch.equal(models[0].weight, models[1].weight)
    assert any("waiting" in m for m in logs) and any(m.startswith("[cache] loaded") for m in logs)


def test_changed_folder_is_a_new_cache_entry_and_reloads(tiny, tmp_path):
    root = tmp_path / "photos"
    for c in ("a", "b"):
        for i in range(3):
            (root / c).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (80 * i, 0, 0)).save(root / c / f"{i}.png")
    profile = tiny.replace(dataset=f"folder:{root}", folder_start="scratch")
    spec = E.rotnet_spec(profile)
    assert spec.config["data"]["root"] == str(root.resolve())
    n = len(E.load_split(profile, "train"))
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "a" / "new.png")
    assert E.rotnet_spec(profile).stem != spec.stem       # so every model and result of it is computed anew
    assert len(E.load_split(profile, "train")) == n + 1   # and the in-memory copy is reloaded


def test_a_loaded_split_is_the_callers_own(tiny):
    """Editing the images or labels a caller got changes nothing for the next caller (no shared tensors)."""
    first = E.load_split(tiny, "test")
    pristine = first.images.clone(), first.labels.clone()
    first.images.zero_()
    first.labels.fill_(0)
    first.classes.append("poison")
    again = E.load_split(tiny, "test")
    assert torch.equal(again.images, pristine[0]) and torch.equal(again.labels, pristine[1])
    assert "poison" not in again.classes
    E.clear_caches()                                       # forgetting them only means decoding again
    assert torch.equal(E.load_split(tiny, "test").images, pristine[0])


def test_results_and_models_have_format_versions_of_their_own(monkeypatch):
    """Remaking the cached results must not rename the shipped models, and the other way round."""
    from rotlib import experiments as E
    from rotlib import identity
    from rotlib.experiments import measures
    profile = rotlib.get_profile("quick")
    stem, key = E.rotnet_spec(profile).stem, measures.result_key(profile, measure="m")
    monkeypatch.setattr(identity, "RESULT_FORMAT", identity.RESULT_FORMAT + 1)
    monkeypatch.setattr(measures, "RESULT_FORMAT", identity.RESULT_FORMAT)
    assert E.rotnet_spec(profile).stem == stem and measures.result_key(profile, measure="m") != key
    monkeypatch.setattr(identity, "MODEL_FORMAT", identity.MODEL_FORMAT + 1)
    monkeypatch.setattr(E.recipes, "MODEL_FORMAT", identity.MODEL_FORMAT)
    assert E.rotnet_spec(profile).stem != stem
