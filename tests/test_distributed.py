"""The multi-process path on the CPU: two gloo processes under torchrun (tests/ddp_scenarios.py), compared with one.

Plus the pieces that need a GPU to run, tested where they can be without one: the precision choice (the CUDA
capability mocked), the SyncBatchNorm copy, cuDNN's flags.
"""
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from unittest import mock

import pytest
import torch

import ddp_scenarios as S
from rotlib import devices
from rotlib import distributed as dist
from rotlib import train as T

HERE = Path(__file__).resolve().parent


def _torchrun(out: Path, *extra: str, port: int, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(HERE / "ddp_scenarios.py"), str(out), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE.parent))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of two processes saw, and what one process sees in the same scenarios."""
    out = tmp_path_factory.mktemp("ddp")
    proc = _torchrun(out, port=29531)
    assert proc.returncode == 0, proc.stderr[-4000:]
    one_dir = tmp_path_factory.mktemp("one")
    with mock.patch.dict(os.environ, {"ROTLIB_CACHE": str(one_dir / "cache")}):
        one = S.run_all(one_dir)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)], one


def test_two_processes_train_what_one_process_trains(ranks):
    (r0, r1), one = ranks
    assert r0["world"] == r1["world"] == 2 and one["world"] == 1
    for case in ("even", "uneven"):      # uneven: one batch of 5 rows, shared 3 + 2; DDP's mean re-weighted
        assert torch.equal(r0[case]["weight"], r1[case]["weight"])
        torch.testing.assert_close(r0[case]["weight"], one[case]["weight"], rtol=1e-5, atol=1e-6)
        # the history is the global batch's, the same on every rank (not rank 0's share alone)
        assert r0[case]["history"] == r1[case]["history"]
        torch.testing.assert_close(torch.tensor(r0[case]["history"]["step_loss"]),
                                   torch.tensor(one[case]["history"]["step_loss"]), rtol=1e-5, atol=1e-6)
        assert r0[case]["history"]["step_acc"] == one[case]["history"]["step_acc"]


def test_each_rank_gets_its_own_share_of_the_augmented_batch(ranks):
    (r0, r1), one = ranks
    a, b, whole = r0["inputs"], r1["inputs"], one["inputs"]
    assert a.shape == b.shape and len(a) + len(b) == len(whole) == 8 * 4
    assert not torch.equal(a, b)                       # other images, other crops, flips and rotations
    assert torch.equal(a, whole[0::2]) and torch.equal(b, whole[1::2])   # together: one process's batch


def test_indivisible_batch_is_refused_on_every_rank(ranks):
    (r0, r1), one = ranks
    for r in (r0, r1):
        assert r["indivisible"].startswith("ValueError") and "divisible by 2" in r["indivisible"]
    assert one["indivisible"] == "not refused"


def test_nan_on_one_rank_stops_every_rank_at_the_same_step(ranks):
    (r0, r1), _ = ranks
    assert r0["nan"] == r1["nan"]
    assert r0["nan"].startswith("FloatingPointError") and "epoch 1, step 2" in r0["nan"]


def test_sharded_prediction_is_one_process_prediction(ranks):
    (r0, r1), one = ranks
    for r in (r0, r1):        # the same rows in the same order (the logits to rounding: 1 thread there, 2 here)
        torch.testing.assert_close(r["predict"].logits, one["predict"].logits, rtol=1e-5, atol=1e-6)
        assert torch.equal(r["predict"].targets, one["predict"].targets)
        assert torch.equal(r["predict"].image, one["predict"].image)


def test_sharded_feature_extraction_is_one_process_extraction(ranks):
    (r0, r1), one = ranks
    for r in (r0, r1):        # 10 images in batches of 3: rank 0 extracts batches 0 and 2, rank 1 batches 1 and 3
        assert list(r["features"]) == ["conv1", "conv3"]
        for block, features in one["features"].items():
            assert r["features"][block].shape == features.shape and features.shape[0] == 10
            torch.testing.assert_close(r["features"][block], features, rtol=1e-5, atol=1e-6)


def test_cache_decision_is_taken_once_and_shared(ranks):
    (r0, r1), _ = ranks
    for r in (r0, r1):
        assert r["cache"]["trained"] == 1                 # both trained the corrupt entry (none loaded, none hung)
        assert torch.equal(r["cache"]["first"], r["cache"]["again"])
        assert r["cache"]["json"] == 12.5 and r["cache"]["json_computed"] == 1
    assert torch.equal(r0["cache"]["first"], r1["cache"]["first"])
    assert any(".corrupt" in m for m in r0["cache"]["logs"])        # rank 0 set it aside and said so
    assert not any(".corrupt" in m for m in r1["cache"]["logs"])    # rank 1 did not touch the file


def test_missing_dataset_is_looked_for_once_and_every_rank_says_why(ranks):
    (r0, r1), _ = ranks
    assert r0["no_data"] == r1["no_data"]           # rank 0's error, the same words on rank 1
    for r in (r0, r1):
        assert r["no_data"].startswith("DatasetNotFoundError") and "download disabled" in r["no_data"]


def test_a_failure_on_one_rank_ends_every_rank(tmp_path):
    t0 = time.time()
    proc = _torchrun(tmp_path, "crash", port=29533, timeout=240)
    assert proc.returncode != 0
    assert "rank 1 failed on purpose" in proc.stdout + proc.stderr
    assert time.time() - t0 < 120        # rank 0 (50 epochs to go) did not wait for a timeout


def test_train_command_under_torchrun_uses_one_process_group(tiny, tmp_path):
    out = tmp_path / "train.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29535", "-m", "rotlib",
           "train", "--dataset", "cifar10", "--profile", "paper", "--epochs", "1", "--width", "8", "--blocks", "3",
           "--n-train", "200", "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    assert json.loads(out.read_text())["world_size"] == 2


# ---------------------------------------------------------------- without a GPU: what can be checked on the CPU
def _cuda(bf16: bool, capability: tuple[int, int]):
    return mock.patch.multiple(torch.cuda, is_bf16_supported=mock.Mock(return_value=bf16),
                               get_device_capability=mock.Mock(return_value=capability))


@pytest.mark.parametrize("bf16, capability, expected", [(True, (9, 0), "bf16"),     # H100/H200, A100: native bf16
                                                        (False, (7, 5), "fp16"),    # T4, V100: fp16 tensor cores
                                                        (False, (6, 1), "fp32")])   # Pascal
def test_auto_precision_on_cuda_follows_the_hardware(bf16, capability, expected):
    with _cuda(bf16, capability):
        assert devices.resolve_precision(torch.device("cuda"), "auto") == expected
        torch.cuda.is_bf16_supported.assert_called_with(including_emulation=False)   # emulated bf16 is slow


def test_explicit_precision_that_cannot_be_honoured_is_refused():
    with _cuda(False, (7, 0)), pytest.raises(ValueError, match="no native bf16"):
        devices.resolve_precision(torch.device("cuda"), "bf16")
    with pytest.raises(ValueError, match="not a CUDA GPU with tensor cores"):
        devices.resolve_precision(torch.device("cpu"), "fp16")
    with mock.patch.object(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", return_value=False):
        with warnings.catch_warnings():
            warnings.simplefilter("error")                      # a key or a loaded model: bf16, and no warning
            assert devices.resolve_precision(torch.device("cpu"), "bf16") == "bf16"
        assert devices.resolve_precision(torch.device("cpu"), "auto") == "fp32"
    assert devices.resolve_precision(torch.device("cpu"), "fp32") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        T.TrainConfig(epochs=1, precision="half")


def test_training_in_emulated_bf16_on_a_cpu_says_so():
    """The quick profile pins bf16 on every CPU; where it is emulated, fit trains and warns; where native, no warning."""
    cfg = T.TrainConfig(epochs=1, batch_size=8, precision="bf16", channels_last=False)
    with mock.patch.object(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", return_value=False):
        with pytest.warns(UserWarning, match="emulated"):
            T.fit(S._linear(), S._vectors(16), T.ClassificationTask(), cfg, device="cpu", progress=False)
    with mock.patch.object(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", return_value=True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            T.fit(S._linear(), S._vectors(16), T.ClassificationTask(), cfg, device="cpu", progress=False)


def test_fp16_trains_with_a_grad_scaler_that_is_checkpointed(monkeypatch, tmp_path):
    """The fp16 path (CUDA GPUs without native bf16), run on the CPU: autocast fp16 and a GradScaler."""
    for module in (T, devices):                        # the loop's choice and the emulation check's
        monkeypatch.setattr(module, "resolve_precision", lambda device, precision: "fp16")
    model, ckpt = S._linear(), tmp_path / "fp16.ckpt"
    before = model.weight.detach().clone()
    history = T.fit(model, S._vectors(32), T.ClassificationTask(), T.TrainConfig(epochs=2, batch_size=8, **S.FP32),
                    ckpt, device="cpu", progress=False)
    state = torch.load(ckpt, weights_only=True)
    assert state["scaler"]["scale"] > 0 and all(map(lambda v: v == v, history["step_loss"]))
    assert not torch.equal(model.weight, before)       # the scaled steps were taken (not all skipped as inf)


def test_sync_batchnorm_copy_leaves_the_callers_model_alone():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    copy = dist.sync_batchnorm_copy(model)
    assert isinstance(copy[1], torch.nn.SyncBatchNorm) and type(model[1]) is torch.nn.BatchNorm2d
    assert copy[0].weight is not model[0].weight
    model.load_state_dict(copy.state_dict())          # what fit does with the trained copy: same keys


def test_cudnn_flags_are_set_for_the_run_and_restored():
    cudnn = torch.backends.cudnn
    before = cudnn.benchmark, cudnn.deterministic
    with T._cudnn(torch.device("cuda"), deterministic=True):
        assert (cudnn.benchmark, cudnn.deterministic) == (False, True)
    with T._cudnn(torch.device("cuda"), deterministic=False):
        assert (cudnn.benchmark, cudnn.deterministic) == (True, False)
    assert (cudnn.benchmark, cudnn.deterministic) == before
    with T._cudnn(torch.device("cpu"), deterministic=True):
        assert (cudnn.benchmark, cudnn.deterministic) == before


def test_backend_follows_the_requested_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dist._wants_cuda("cuda:1") and dist._wants_cuda("auto") and not dist._wants_cuda("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not dist._wants_cuda("auto") and not dist._wants_cuda(None)
