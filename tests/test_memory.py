"""rotlib.memory.keep_freed_memory: it takes effect on glibc, does nothing elsewhere, and changes no number."""
import hashlib
import subprocess
import sys
import textwrap

import pytest

from rotlib import memory

TRAIN = textwrap.dedent("""
    import hashlib, sys, torch
    from rotlib.memory import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    from rotlib.models import NetworkInNetwork
    from rotlib.train import RotationTask, TrainConfig, fit, set_seed
    from rotlib.data import ImageData
    g = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=g),
                     torch.zeros(48, dtype=torch.long), ["x"], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    set_seed(0)
    model = NetworkInNetwork(3, 32, 3, 4)
    fit(model, data, RotationTask(data.normalize, "4"), TrainConfig(epochs=2, batch_size=16), progress=False)
    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(v.float().numpy().tobytes())
    print(h.hexdigest())
""")


def _trained_weights_hash(mode: str) -> str:
    out = subprocess.run([sys.executable, "-c", TRAIN, mode], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_takes_effect_on_glibc():
    # Run in a child process: the setting is process-wide, the test process keeps its own allocator settings.
    out = subprocess.run([sys.executable, "-c", "from rotlib.memory import keep_freed_memory as k; print(k())"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr


def test_does_nothing_off_linux(monkeypatch):
    monkeypatch.setattr(memory.platform, "system", lambda: "Darwin")
    assert memory.keep_freed_memory() is False


def test_training_is_bit_identical_with_and_without():
    """Same seed, same data: the trained weights are the same bits whichever allocator settings the process has."""
    assert _trained_weights_hash("keep") == _trained_weights_hash("default")
