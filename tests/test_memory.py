"""rotlib.memory.keep_freed_memory: it removes the page faults of large freed blocks, does nothing off glibc, and
changes no number. The setting is process-wide, so every check that needs it runs in a child process."""
import platform
import subprocess
import sys
import textwrap

import pytest

from rotlib import memory

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

FAULTS = textwrap.dedent("""
    import resource, sys, torch
    from rotlib.memory import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):                       # 64 MiB, allocated, touched and freed (glibc settles in two rounds)
        torch.ones(16 * 2**20).sum()
    before = faults()
    for _ in range(10):
        torch.ones(16 * 2**20).sum()         # the same size again, as a training step does
    print(faults() - before)
""")

TRAIN = textwrap.dedent("""
    import hashlib, sys, torch
    from rotlib.memory import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    from rotlib.data import ImageData
    from rotlib.models import NetworkInNetwork
    from rotlib.train import RotationTask, TrainConfig, fit, set_seed
    g = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8, generator=g),
                     torch.zeros(128, dtype=torch.long), ["x"], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    set_seed(0)
    model = NetworkInNetwork(3, 64, 3, 4)
    # 64 images x 4 rotations per step: block-1 activations of 256 x 64 x 32 x 32 (32 MiB in bf16, 64 MiB of
    # fp32 gradient), beyond glibc's largest automatic mmap threshold, so the two runs allocate differently.
    fit(model, data, RotationTask(data.normalize, "4"), TrainConfig(epochs=2, batch_size=64), progress=False)
    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(v.float().numpy().tobytes())
    print(h.hexdigest())
""")


def _child(script: str, mode: str) -> str:
    out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@glibc_only
def test_removes_page_faults_of_large_blocks():
    default, kept = int(_child(FAULTS, "default")), int(_child(FAULTS, "keep"))
    # 10 x 64 MiB mapped afresh = ~160,000 faults of 4 KiB pages (fewer with huge pages); kept: the heap is reused
    assert default > 5_000, f"expected glibc to map each 64 MiB block afresh, saw only {default} page faults"
    assert kept < default / 20, (kept, default)


def test_does_nothing_off_linux(monkeypatch):
    monkeypatch.setattr(memory.platform, "system", lambda: "Darwin")
    assert memory.keep_freed_memory() is False


def test_does_nothing_without_glibc(monkeypatch):
    class Musl:                              # a C library without gnu_get_libc_version
        def __getattr__(self, name):
            raise AttributeError(name)
    monkeypatch.setattr(memory.platform, "system", lambda: "Linux")
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda *a, **k: Musl())
    assert memory.keep_freed_memory() is False


@glibc_only
def test_training_is_bit_identical_with_and_without():
    """Same seed, same data: the same trained bits whichever allocator settings the process has."""
    assert _child(TRAIN, "keep") == _child(TRAIN, "default")
