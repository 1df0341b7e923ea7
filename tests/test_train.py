import json

import pytest
import torch

from rotlib import CheckpointMismatchError, NetworkInNetwork
from rotlib.data import ImageData
from rotlib import experiments as E
from rotlib.checkpoints import load_weights, save_atomic
from rotlib.devices import amp_dtype
from rotlib.train import RotationTask, TrainConfig, fit


def test_tiny_training_lowers_loss(tiny):
    data = E.load_split(tiny, "train")
    torch.manual_seed(0)
    model = NetworkInNetwork(3, 16, 3, 4)
    hist = fit(model, data, RotationTask(data.normalize), TrainConfig(epochs=3, batch_size=20, lr=0.05), device="cpu",
               progress=False)
    assert len(hist["epoch_loss"]) == 3
    assert hist["epoch_loss"][-1] < 0.8 * hist["epoch_loss"][0]


def test_cache_returns_same_weights_without_retraining(tiny, cache, capsys):
    m1 = E.train_rotnet(tiny, progress=False)
    assert len(list(cache.glob("rotnet-*.pt"))) == 1 and "training it" in capsys.readouterr().out
    m2 = E.train_rotnet(tiny, progress=False)
    said = capsys.readouterr().out
    assert "[cache] loaded" in said and "training" not in said
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert E.rotnet_spec(tiny, seed=1).stem != E.rotnet_spec(tiny).stem   # another config is another entry


def test_resume_continues_from_saved_epoch(tiny, tmp_path):
    data = E.load_split(tiny, "train")
    ckpt = tmp_path / "run.ckpt"
    cfg = TrainConfig(epochs=3, batch_size=20, lr=0.05)
    torch.manual_seed(0)
    full = NetworkInNetwork(3, 16, 3, 4)
    fit(full, data, RotationTask(data.normalize), cfg, device="cpu", progress=False)

    torch.manual_seed(0)
    part = NetworkInNetwork(3, 16, 3, 4)
    fit(part, data, RotationTask(data.normalize), TrainConfig(epochs=3, batch_size=20, lr=0.05), ckpt,
        device="cpu", progress=False)
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 3

    # interrupt after 1 epoch: train 1 epoch of a 3-epoch run by stopping via an exception in the task
    torch.manual_seed(0)
    interrupted = NetworkInNetwork(3, 16, 3, 4)
    ckpt2 = tmp_path / "interrupted.ckpt"
    steps = len(data) // 20

    class Stop(RotationTask):
        n = 0

        def __call__(self, *a, **k):
            Stop.n += 1
            if Stop.n > steps + 2:
                raise KeyboardInterrupt
            return super().__call__(*a, **k)

    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, data, Stop(data.normalize), cfg, ckpt2, device="cpu", progress=False)
    assert torch.load(ckpt2, weights_only=True)["epoch"] == 1
    logs = []
    resumed = NetworkInNetwork(3, 16, 3, 4)
    hist = fit(resumed, data, RotationTask(data.normalize), cfg, ckpt2, device="cpu", progress=False, log=logs.append)
    assert "after epoch 1/3" in logs[0] and len(hist["epoch_loss"]) == 3
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)


def test_checkpoint_of_other_width_is_refused(tmp_path):
    src = NetworkInNetwork(3, 16, 3, 4)
    from rotlib.checkpoints import architecture
    save_atomic({"model": src.state_dict(), "arch": architecture(src)}, tmp_path / "w16.pt")
    with pytest.raises(CheckpointMismatchError, match="width': 16.*delete"):
        load_weights(NetworkInNetwork(3, 32, 3, 4), torch.load(tmp_path / "w16.pt", weights_only=True),
                     source=str(tmp_path / "w16.pt"))
    with pytest.raises(CheckpointMismatchError, match="does not fit"):
        load_weights(NetworkInNetwork(3, 32, 3, 4), {"model": src.state_dict()})
    assert not list(tmp_path.glob("*.tmp*"))


def test_nan_loss_stops_with_advice(tiny):
    data = E.load_split(tiny, "train")
    model = NetworkInNetwork(3, 16, 3, 4)
    with pytest.raises(FloatingPointError, match="Lower the learning rate"):
        fit(model, data, RotationTask(lambda x: x.float() * float("nan")), TrainConfig(epochs=1, batch_size=20),
            device="cpu", progress=False)


def test_schedule_shape():
    cfg = TrainConfig(epochs=200, milestones=(0.3, 0.6, 0.8))
    lrs = [cfg.lr_at(e * 10, 2000) for e in (0, 59, 60, 119, 120, 160, 199)]
    assert lrs == pytest.approx([0.1, 0.1, 0.02, 0.02, 0.004, 0.0008, 0.0008])
    assert amp_dtype(torch.device("cpu"), "fp32") is None
    with pytest.raises(ValueError, match="precision"):
        amp_dtype(torch.device("cpu"), "fp8")


def _counts(percent: float, n: int) -> bool:
    """Whether ``percent`` is k/n for a whole k: an accuracy measured on exactly n examples."""
    return abs(percent * n / 100 - round(percent * n / 100)) < 1e-4


def test_probe_and_random_baseline(tiny):
    model = E.train_rotnet(tiny, progress=False)
    n_test = len(E.load_split(tiny, "test"))
    acc = E.probe_blocks(model, tiny, classifier="nonlinear", progress=False)
    assert set(acc) == {"conv1", "conv2", "conv3"} and all(_counts(v, n_test) for v in acc.values())
    assert E.probe_blocks(model, tiny, classifier="nonlinear", progress=False) == acc  # cached
    rnd = E.random_init(tiny)
    assert _counts(E.probe(rnd, tiny, "conv2", "linear", progress=False), n_test)
    assert _counts(E.rotation_accuracy(model, tiny), 4 * n_test)


def test_crossover():
    assert E.crossover([10, 100, 1000], [50, 60, 70], [40, 60, 80]) == pytest.approx(100.0)
    assert E.crossover([10, 100], [50, 60], [40, 50]) is None
    assert E.crossover([10, 100], [50, 60], [20, 70]) == pytest.approx(10 ** 1.75)


def test_results_are_read_back_and_a_changed_model_is_measured_anew(tiny, cache):
    """A result is looked up by the digest of the model's weights: the same weights read the stored entry back
    (even when it was edited by hand), and weights changed in place are measured again, never given a stale result."""
    model = E.train_rotnet(tiny, progress=False)
    first = E.rotation_accuracy(model, tiny)
    [entry] = cache.glob("rotacc-*.json")
    stored = json.loads(entry.read_text())
    assert stored["result"] == first and stored["config"]["precision"] in ("bf16", "fp32")   # resolved, never auto
    entry.write_text(json.dumps({**stored, "result": -1.0}))
    assert E.rotation_accuracy(model, tiny) == -1.0                      # read back, not recomputed
    reloaded = E.train_rotnet(tiny, progress=False)                      # the same weights, a new object
    assert E.rotation_accuracy(reloaded, tiny) == -1.0
    with torch.no_grad():
        next(model.parameters()).zero_()                                 # "trained further" in place
    changed = E.rotation_accuracy(model, tiny)
    assert changed != -1.0 and len(list(cache.glob("rotacc-*.json"))) == 2


def test_building_a_model_leaves_the_global_generator_alone(tiny):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = E.random_init(tiny, seed=0)
    assert torch.equal(torch.rand(3), expected)                          # the caller's random numbers are its own
    b = E.random_init(tiny, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_consecutive_probes_reuse_frozen_features(tiny, cache, monkeypatch):
    model = E.train_rotnet(tiny, progress=False)
    calls = []
    from rotlib.experiments import measures
    real = measures.extract_features
    monkeypatch.setattr(measures, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = E.probe(model, tiny, "conv2", "linear", seed=0)
    E.probe(model, tiny, "conv2", "linear", seed=1)
    assert len(calls) == 2  # train + test, once for both classifier seeds
    E.probe(model, tiny, "conv2", "linear", per_class=2, seed=0)
    assert len(calls) == 3  # a new labelled subset: only its train features are computed
    E.clear_caches()
    monkeypatch.setenv("ROTLIB_CACHE", str(cache.parent / "other-cache"))
    assert E.probe(model, tiny, "conv2", "linear", seed=0) == first  # same result as computing afresh


def test_train_config_refuses_bad_values():
    for bad in ({"epochs": 0}, {"epochs": -1}, {"epochs": 2.5}, {"batch_size": 0}, {"lr": 0}, {"lr": float("nan")},
                {"milestones": (0.8, 0.3)}, {"milestones": (0.5, 1.5)}, {"precision": "fp8"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**{"epochs": 1, **bad})


def test_fit_refuses_an_empty_dataset():
    from rotlib.train import ClassificationTask, TensorData
    with pytest.raises(ValueError, match="no training images"):
        fit(torch.nn.Linear(2, 2), TensorData(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)),
            ClassificationTask(), TrainConfig(epochs=1), device="cpu", progress=False)


def _probe_blocks_per_batch(profile):
    """The paper profile's probe path (features computed per batch) over several blocks; the RotNet stays as it was."""
    model = E.train_rotnet(profile, progress=False)
    device = next(model.parameters()).device
    before = {k: v.clone() for k, v in model.state_dict().items()}
    acc = E.probe_blocks(model, profile, classifier="linear", progress=False)
    assert set(acc) == {"conv1", "conv2", "conv3"}
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in model.parameters()) and next(model.parameters()).device == device
    data = E.load_split(profile, "train")
    fit(model, data, RotationTask(data.normalize), TrainConfig(epochs=1, batch_size=20), device=profile.device,
        progress=False)                                 # it can still be trained, and comes back to its device
    assert next(model.parameters()).device == device
    assert not torch.equal(model.state_dict()["blocks.0.0.0.weight"], before["blocks.0.0.0.weight"])


def test_probe_blocks_without_precomputed_features(tiny):
    _probe_blocks_per_batch(tiny.replace(precompute_features=False))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_probe_blocks_without_precomputed_features_on_cuda(tiny):
    _probe_blocks_per_batch(tiny.replace(precompute_features=False, device="cuda"))
    from rotlib.evaluate import accuracy
    from rotlib.train import ClassificationTask
    net, test = E.random_init(tiny), E.load_split(tiny, "test")
    accuracy(net, test, ClassificationTask(test.normalize), device="cuda")
    assert next(net.parameters()).device.type == "cpu"  # evaluation does not move the caller's model


# ---------------------------------------------------------------- device="auto" on every accelerator (mocked)
@pytest.mark.parametrize("cuda, other, expected", [(True, "cuda", "cuda"), (False, "mps", "mps"), (False, "xpu", "xpu"),
                                                   (False, None, "cpu")])
def test_auto_prefers_cuda_then_any_accelerator_then_the_cpu(monkeypatch, cuda, other, expected):
    """No MPS/XPU machine runs CI: torch's availability answers are mocked, the choice is rotlib's."""
    from rotlib.devices import pick_device, resolve_precision
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: other is not None)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *a, **k: torch.device(other) if other else None)
    assert pick_device("auto") == torch.device(expected)
    if expected in ("mps", "xpu"):
        # native bf16 only: the default also counts emulation, which is slow
        monkeypatch.setattr(torch.xpu, "is_bf16_supported", lambda including_emulation=True: not including_emulation)
        assert resolve_precision(torch.device(expected), "auto") == {"mps": "fp32", "xpu": "bf16"}[expected]
        assert pick_device(expected) == torch.device(expected)
        with pytest.raises(RuntimeError, match="no usable CUDA device"):
            pick_device("cuda")
        with pytest.raises(ValueError, match="precision 'fp16' requested"):
            resolve_precision(torch.device(expected), "fp16")
    if expected == "cpu":
        with pytest.raises(RuntimeError, match="no usable MPS device .*sees the CPU only"):
            pick_device("mps")


class _StepByStep:
    """A task without ``draw()``: fit lets it draw its random numbers from the generator at each step."""

    def __init__(self, task):
        self.task = task

    def __call__(self, *args, **kwargs):
        return self.task(*args, **kwargs)


@pytest.mark.parametrize("mode", ["all", "random"])
def test_an_epochs_random_numbers_drawn_at_its_start_are_those_drawn_step_by_step(mode):
    """fit draws an epoch's shuffle, crops, flips and rotations at its start (one host-to-device copy on a GPU); the
    run is bit-identical to drawing them step by step, as before."""
    g = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (40, 3, 12, 12), dtype=torch.uint8, generator=g),
                     torch.randint(0, 4, (40,), generator=g), list("abcd"), (0.5,) * 3, (0.25,) * 3)
    runs = []
    for task in (RotationTask(data.normalize, "4", mode, augment=True),
                 _StepByStep(RotationTask(data.normalize, "4", mode, augment=True))):
        torch.manual_seed(0)
        net = NetworkInNetwork(3, 8, 3, 4)
        history = fit(net, data, task, TrainConfig(epochs=2, batch_size=16, precision="fp32", seed=1), device="cpu",
                      progress=False)
        runs.append((history, net.state_dict()))
    (h1, w1), (h2, w2) = runs
    assert h1 == h2 and all(torch.equal(w1[k], w2[k]) for k in w1)
    images = data.images[:5]
    drawn = RotationTask(data.normalize, "4", mode, augment=True)
    a = drawn(images, data.labels[:5], train=True, generator=torch.Generator().manual_seed(7))
    b = drawn(images, data.labels[:5], train=True, draws=drawn.draw(5, torch.Generator().manual_seed(7)))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_max_steps_stops_inside_an_epoch_on_the_full_runs_path(tiny, tmp_path):
    """Notebook 2's live run: the first steps of a recipe, the same losses as the full run's first steps; the
    unfinished epoch gets no per-epoch entry, and a checkpoint (which could not resume mid-epoch) is refused."""
    data = E.load_split(tiny, "train")
    cfg = TrainConfig(epochs=2, batch_size=20, lr=0.05)
    runs = {}
    for steps in (None, 13):
        torch.manual_seed(0)
        runs[steps] = fit(NetworkInNetwork(3, 16, 3, 4), data, RotationTask(data.normalize, augment=True), cfg,
                          device="cpu", progress=False, max_steps=steps)
    per_epoch = len(data) // 20
    assert 13 > per_epoch and len(runs[None]["step_loss"]) == 2 * per_epoch
    assert runs[13]["step_loss"] == runs[None]["step_loss"][:13]
    assert runs[13]["epoch_loss"] == runs[None]["epoch_loss"][:1]          # epoch 1 finished, epoch 2 did not
    with pytest.raises(ValueError, match="max_steps stops inside an epoch"):
        fit(NetworkInNetwork(3, 16, 3, 4), data, RotationTask(data.normalize), cfg, tmp_path / "c.ckpt",
            device="cpu", progress=False, max_steps=5)
