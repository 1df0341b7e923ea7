"""The GPU smoke test (``make gpu-smoke``): does the paper's path run on a CUDA GPU? At most ~3 minutes on one GPU.

On the shipped CIFAR-10 images (data/cifar10-5k: the full CIFAR-10 cannot be downloaded here), with rotlib's own
functions and a throw-away cache:

1. the paper's NIN (4 blocks, width 192, batches of 128 images x 4 rotations) trained for ``--steps`` steps in
   the precision ``auto`` picks (bf16 on an A100/H100/H200), with its images/s;
2. its rotation accuracy on the 1,000 test images in 4 rotations, which must beat chance (25%);
3. the cache round trip on the GPU: the same RotNet asked for again is loaded, not trained, and predicts the same;
4. a non-linear probe on its frozen conv2 features for ``--probe-epochs``, which must beat chance (10%);
5. where two GPUs exist, ``torchrun --nproc_per_node=2 -m rotlib train`` for one epoch.

It writes a JSON report (``--out``, default benchmarks/gpu-smoke.json) and exits 1 when a check fails. Without a
CUDA GPU it says so and exits 0 (nothing to test). ``--device cpu`` with a small ``--width`` runs the same steps
on the CPU (the unit tests do, so this script cannot rot unseen).

    python benchmarks/gpu_smoke.py [--steps 300] [--probe-epochs 3] [--device cuda] [--width 192] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rotlib import experiments as E  # noqa: E402
from rotlib.profiles import get_profile  # noqa: E402
from rotlib.devices import pick_device, resolve_precision  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch_timer(device: torch.device):
    """``(ends, on_epoch_end)``: a callback for :func:`rotlib.train.fit` that appends each epoch's end time to
    ``ends``, after the GPU has finished the epoch's work."""
    ends = []

    def on_epoch_end(epoch, model):
        _sync(device)
        ends.append(time.perf_counter())

    return ends, on_epoch_end


def gpu_info(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(name=p.name, capability=list(torch.cuda.get_device_capability(device)),
                    memory_gib=round(p.total_memory / 2**30, 1), device_count=torch.cuda.device_count())
    else:
        info.update(name=f"cpu ({platform.machine()})", threads=torch.get_num_threads())
    return info


def two_gpu_run(width: int, tmp: Path) -> dict:
    """``-m rotlib train`` under torchrun on 2 GPUs for one epoch."""
    out = tmp / "torchrun.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "rotlib", "train", "--profile",
           "paper", "--dataset", "cifar10-5k", "--epochs", "1", "--width", str(width), "--device", "cuda",
           "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=HERE.parent,
                          env=dict(os.environ, ROTLIB_CACHE=str(tmp / "cache-ddp")))
    result = {"returncode": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
              "tail": (proc.stdout + proc.stderr)[-2000:]}
    if proc.returncode == 0:
        result["world_size"] = json.loads(out.read_text())["world_size"]
    return result


def smoke(device_name: str, steps: int, probe_epochs: int, width: int, n_train: int | None) -> dict:
    device = pick_device(device_name)
    profile = get_profile("paper", dataset="cifar10-5k", device=device_name, width=width, n_train=n_train,
                          classifier_epochs=probe_epochs)
    n = len(E.load_split(profile, "train"))
    steps_per_epoch = n // profile.batch_size
    epochs = max(1, math.ceil(steps / steps_per_epoch))
    profile = profile.replace(rotnet_epochs=epochs)
    report = {"device": gpu_info(device), "precision": resolve_precision(device, profile.precision),
              "profile": {"width": width, "blocks": profile.num_blocks, "batch_size": profile.batch_size,
                          "rotations": 4, "train_images": n, "epochs": epochs, "steps": epochs * steps_per_epoch}}
    ends, timestamp = epoch_timer(device)
    _sync(device)
    t0 = time.perf_counter()
    model = E.train_rotnet(profile, progress=False, on_epoch_end=timestamp)
    _sync(device)
    seconds = time.perf_counter() - t0
    rows = steps_per_epoch * profile.batch_size * 4
    report["train"] = {"seconds": round(seconds, 2), "images_per_s_overall": round(epochs * rows / seconds),
                       # mean loss of the first and of the last 10 steps
                       "first_loss": sum(model.history["step_loss"][:10]) / len(model.history["step_loss"][:10]),
                       "last_loss": sum(model.history["step_loss"][-10:]) / len(model.history["step_loss"][-10:])}
    if len(ends) > 1:       # after the first epoch (cuDNN's kernel search, allocator warm-up)
        report["train"]["images_per_s_after_epoch_1"] = round((len(ends) - 1) * rows / (ends[-1] - ends[0]))
    if device.type == "cuda":
        report["train"]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    acc = E.rotation_accuracy(model, profile)
    logs = []
    from rotlib import cache as C
    spec = E.rotnet_spec(profile, progress=False)
    again = C.cached_model(spec.name, spec.config, spec.build, spec.train, log=logs.append)
    same = torch.equal(E.rotation_predictions(model, profile).logits, E.rotation_predictions(again, profile).logits)
    t1 = time.perf_counter()
    probe = E.probe(model, profile, "conv2", "nonlinear", progress=False)
    report.update(rotation_accuracy=round(acc, 2), probe_conv2=round(probe, 2),
                  probe_seconds=round(time.perf_counter() - t1, 1), cache_log=logs)
    report["checks"] = {"loss is finite": all(map(math.isfinite, model.history["step_loss"])),
                        "loss went down": report["train"]["last_loss"] < report["train"]["first_loss"],
                        "rotation accuracy above chance (25%)": acc > 25,
                        "cached model loaded, not trained": any(m.startswith("[cache] loaded") for m in logs),
                        "cached model predicts the same": same,
                        "conv2 probe above chance (10%)": probe > 10}
    if device.type == "cuda" and torch.cuda.device_count() >= 2:
        with tempfile.TemporaryDirectory() as tmp:
            report["torchrun_2_gpus"] = two_gpu_run(min(width, 64), Path(tmp))
        report["checks"]["torchrun on 2 GPUs"] = report["torchrun_2_gpus"]["returncode"] == 0
    return report


def nvidia_gpu_present(root: str = "/") -> str | None:
    """The NVIDIA driver's version line when the machine has an NVIDIA GPU (seen without torch), else None."""
    version = Path(root, "proc/driver/nvidia/version")
    if version.is_file():
        return version.read_text().splitlines()[0].strip() if version.read_text().strip() else "NVIDIA driver"
    if any(Path(root, "dev").glob("nvidia[0-9]*")):
        return "an NVIDIA device node (driver version unknown)"
    return None


def cuda_gate(device: str, what: str, root: str = "/") -> int | None:
    """None: go on. 0: no GPU on this machine, nothing to test (said). 1: a GPU is here but this torch cannot use
    it (a CPU-only wheel, a driver too old for its CUDA): said, so a GPU host never passes by skipping."""
    if not device.startswith("cuda") or torch.cuda.is_available():
        return None
    driver = nvidia_gpu_present(root)
    if driver is None:
        print(f"{what}: no CUDA GPU on this machine, so there is nothing to test (exit 0). "
              "Run it on a machine with an NVIDIA GPU.")
        return 0
    print(f"{what}: FAILED: this machine has an NVIDIA GPU ({driver}) but torch {torch.__version__} cannot use it "
          f"(torch.version.cuda = {torch.version.cuda}: None is a CPU-only wheel; else the driver may be too old for "
          "it). Install a CUDA build of torch that this driver supports.", file=sys.stderr)
    return 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--probe-epochs", dest="probe_epochs", type=int, default=3)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--n-train", dest="n_train", type=int, default=None)
    ap.add_argument("--out", default=str(HERE / "gpu-smoke.json"))
    args = ap.parse_args()
    gate = cuda_gate(args.device, "gpu-smoke")
    if gate is not None:
        return gate
    with tempfile.TemporaryDirectory() as tmp:          # a throw-away cache and results folder: trains afresh
        os.environ.update(ROTLIB_CACHE=str(Path(tmp) / "cache"), ROTLIB_RESULTS=str(Path(tmp) / "results"),
                          ROTLIB_PROGRESS="0")
        t0 = time.perf_counter()
        report = smoke(args.device, args.steps, args.probe_epochs, args.width, args.n_train)
        report["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    failed = [name for name, ok in report["checks"].items() if not ok]
    print(json.dumps({k: report[k] for k in ("device", "precision", "train", "rotation_accuracy", "probe_conv2",
                                             "checks", "seconds")}, indent=2))
    print(f"wrote {args.out}; " + (f"FAILED: {', '.join(failed)}" if failed else "all checks passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
