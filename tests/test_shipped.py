"""The models shipped in models/: manifests that match their files, loaded before anything is trained, and made by
the committed training code."""
import json
import math
import statistics
import warnings
from unittest import mock

import pytest
import torch

from rotlib import experiments as E
from rotlib import shipped as S
from rotlib.cache import cached_model, entry_stem
from rotlib.models import NetworkInNetwork
from rotlib.profiles import get_profile

MANIFESTS = sorted(S.models_dir().glob("*.json"))


def test_models_are_shipped():
    assert len(MANIFESTS) >= 20, "models/ should hold every model the notebooks use: run `make models`"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_matches_its_file(manifest):
    m = json.loads(manifest.read_text())
    weights = manifest.with_suffix(".pt")
    assert m["stem"] == manifest.stem == entry_stem(m["cache_name"], m["config"])   # the cache key is the config's
    assert S.sha256(weights) == m["sha256"] and weights.stat().st_size == m["bytes"]
    state = torch.load(weights, map_location="cpu", weights_only=True)                # loads safely
    assert state["config"] == m["config"]
    assert S.epoch_history(state["history"]) == m["history"]
    assert len(m["history"]["epoch_loss"]) == m["config"]["train"]["epochs"]        # trained to the end
    assert m["trained_by"]["code"] and m["trained_by"]["machine"]["cpu"] and m["train_seconds"] > 0
    model = NetworkInNetwork(**m["arch"])
    model.load_state_dict(state["model"])


def test_shipped_models_are_small():
    total = sum(p.stat().st_size for p in S.models_dir().rglob("*") if p.is_file())
    assert total < 50e6, f"models/ holds {total / 1e6:.1f} MB"


def test_every_model_the_notebooks_use_is_shipped():
    profile = get_profile("quick")
    missing = [job.label for job in S.plan(profile) if not job.shipped()]
    assert not missing, f"not shipped (run `make models`): {missing}"
    assert S.snapshot_epochs(profile) == [1, 2, 4, 8, 16, 24]
    for epoch in S.snapshot_epochs(profile):
        path = S.find_snapshot(profile, profile.seeds[0], epoch)          # checked against its manifest
        assert path is not None, f"no snapshot after epoch {epoch}: run `make models`"
        manifest = json.loads(path.with_suffix(".json").read_text())
        assert manifest["epoch"] == epoch and manifest["of"] == E.rotnet_spec(profile, seed=profile.seeds[0]).stem
        assert torch.load(path, map_location="cpu", weights_only=True)["epoch"] == epoch


def test_a_changed_snapshot_is_refused(tmp_path, monkeypatch):
    profile = get_profile("quick")
    source = S.find_snapshot(profile, profile.seeds[0], 1)
    monkeypatch.setenv("ROTLIB_MODELS", str(tmp_path))
    copy = S.snapshot_path(profile, profile.seeds[0], 1)
    copy.parent.mkdir(parents=True)
    copy.write_bytes(source.read_bytes()[:-10])
    copy.with_suffix(".json").write_text(source.with_suffix(".json").read_text())
    with pytest.raises(S.ShippedModelError, match="does not match its manifest"):
        E.rotnet_snapshot(profile, 1)
    assert copy.exists()                                         # a shipped file is never moved aside


def _never_train(model, ckpt):
    raise AssertionError("a shipped model was trained again")


def test_shipped_model_loads_first_and_says_so(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ROTLIB_MODELS", str(tmp_path / "models"))
    spec = E.rotnet_spec(tiny, seed=0, progress=False)
    trained = spec.get()                                     # trained into the (temporary) cache
    S.ship("tiny RotNet", spec, tmp_path / "cache" / f"{spec.stem}.pt")
    for f in (tmp_path / "cache").glob("*.pt"):
        f.unlink()                                           # only the shipped copy is left
    said = []
    loaded = cached_model(spec.name, spec.config, spec.build, _never_train, log=said.append)
    assert said == [f"[cache] loaded shipped model {spec.name} from models/{spec.stem}.pt"]
    assert loaded.history == trained.history
    for a, b in zip(loaded.state_dict().values(), trained.state_dict().values()):
        assert torch.equal(a, b)


def test_a_changed_shipped_file_is_refused(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ROTLIB_MODELS", str(tmp_path / "models"))
    spec = E.rotnet_spec(tiny, seed=0, progress=False)
    spec.get()
    target = S.ship("tiny RotNet", spec, tmp_path / "cache" / f"{spec.stem}.pt")
    target.write_bytes(target.read_bytes()[:-10])            # truncated
    with pytest.raises(S.ShippedModelError, match="sha256"):
        cached_model(spec.name, spec.config, spec.build, _never_train)
    target.write_bytes((tmp_path / "cache" / f"{spec.stem}.pt").read_bytes())
    manifest = target.with_suffix(".json")
    good = manifest.read_text()
    manifest.write_text(good[:len(good) // 2])                # a truncated manifest: named, with its fix
    with pytest.raises(S.ShippedModelError, match=rf"the manifest {manifest} is damaged .*git checkout -- {manifest}"):
        cached_model(spec.name, spec.config, spec.build, _never_train)
    manifest.write_text("{}")                                 # valid JSON, no sha256
    with pytest.raises(S.ShippedModelError, match="no sha256 field"):
        S.read_manifest(spec.stem)
    manifest.unlink()
    with pytest.raises(S.ShippedModelError, match="no manifest"):
        cached_model(spec.name, spec.config, spec.build, _never_train)


def test_stop_after_trains_the_start_of_the_schedule(tiny):
    full = E.train_rotnet(tiny.replace(rotnet_epochs=3), seed=0, progress=False)
    start = E.train_rotnet_start(tiny.replace(rotnet_epochs=3), epochs=1, seed=0, progress=False)
    steps = len(start.history["step_loss"])
    assert len(start.history["epoch_loss"]) == 1 and steps == len(full.history["step_loss"]) // 3
    assert start.history["step_loss"] == full.history["step_loss"][:steps]     # same seed, same schedule


def test_the_live_run_trains_in_native_precision_unless_told_to_follow_the_recipe(tiny):
    """Emulated bf16 is ~12x slower than fp32 on a CPU without it: the watched run uses "auto" there by default."""
    pinned = tiny.replace(rotnet_epochs=2, precision="bf16")
    with mock.patch.object(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", return_value=False):
        with warnings.catch_warnings():
            warnings.simplefilter("error")                     # fp32 here: no emulation warning
            E.train_rotnet_start(pinned, epochs=1, seed=0, progress=False)
        with pytest.warns(UserWarning, match="emulated"):       # the recipe exactly: bf16, emulated
            E.train_rotnet_start(pinned, epochs=1, seed=0, progress=False, precision=None)


def test_the_training_code_still_makes_the_shipped_rotnet():
    """CI's check of the committed training code: the first epoch of the shipped seed-0 RotNet, trained again from
    scratch with its recipe, must give the recorded first-epoch loss and accuracy. On the CPU kind that made the
    model they are identical; on another kind bf16 kernels change the training noise, so the tolerance is three
    times the spread of that epoch's loss and accuracy over the shipped seeds (different seeds: more than noise)."""
    profile = get_profile("quick")
    manifests = [S.read_manifest(E.rotnet_spec(profile, seed=s).stem) for s in profile.seeds]
    recorded = [m["history"] for m in manifests]
    live = E.train_rotnet_start(profile, epochs=1, seed=profile.seeds[0], progress=False).history
    made_here = {k: v for k, v in S.machine().items() if k in ("cpu", "amx_bf16", "torch")} == \
        {k: v for k, v in manifests[0]["trained_by"]["machine"].items() if k in ("cpu", "amx_bf16", "torch")}
    for key in ("epoch_loss", "epoch_acc"):
        tol = 1e-9 if made_here else 3 * statistics.stdev(h[key][0] for h in recorded)
        assert math.isclose(live[key][0], recorded[0][key][0], abs_tol=tol), \
            f"{key} after epoch 1: {live[key][0]:.6f} now vs {recorded[0][key][0]:.6f} shipped (±{tol:.2g}, " \
            f"{'same' if made_here else 'another'} CPU kind)"


def _photo_folder(root, n=6):
    from PIL import Image
    for c, colour in (("cats", (200, 30, 30)), ("dogs", (30, 30, 200))):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (40, 40), tuple(v + 5 * i for v in colour)).save(root / c / f"{i}.png")
    return root


def test_a_folder_rotnet_fine_tunes_the_shipped_one(tmp_path, cache):
    folder = f"folder:{_photo_folder(tmp_path / 'photos')}"
    quick = get_profile("quick")
    shipped_net = E.train_rotnet(quick, seed=0)
    spec = E.rotnet_spec(get_profile("quick", dataset=folder), seed=0)
    assert spec.config["start"] == E.rotnet_spec(quick, seed=0).stem            # part of its identity
    assert spec.config["train"]["epochs"] == quick.finetune_epochs and spec.config["train"]["lr"] == quick.finetune_lr
    start = spec.build()
    for a, b in zip(start.state_dict().values(), shipped_net.state_dict().values()):
        assert torch.equal(a, b)
    scratch = E.rotnet_spec(get_profile("quick", dataset=folder, folder_start="scratch"), seed=0)
    assert "start" not in scratch.config and scratch.config["train"]["epochs"] == quick.rotnet_epochs
    assert not torch.equal(next(iter(scratch.build().state_dict().values())), next(iter(start.state_dict().values())))
    with pytest.raises(FileNotFoundError, match="no shipped RotNet with 4 blocks of width 32"):
        E.rotnet_spec(get_profile("quick", dataset=folder, width=32), seed=0)


def test_a_changed_recipe_does_not_draw_the_shipped_models_snapshots():
    """Same file name, other model: a profile with another learning rate finds no snapshot (Fig. 5(a) would
    otherwise show the shipped model's epochs beside its own final model)."""
    profile = get_profile("quick")
    changed = profile.replace(lr=profile.lr / 2)
    assert S.snapshot_path(changed, 0, 1) == S.snapshot_path(profile, 0, 1)
    assert S.find_snapshot(profile, 0, 1) is not None and S.find_snapshot(changed, 0, 1) is None
    with pytest.raises(FileNotFoundError, match="no snapshot"):
        E.rotnet_snapshot(changed, 1)
