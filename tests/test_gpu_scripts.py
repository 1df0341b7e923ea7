"""The GPU smoke test and benchmark (make gpu-smoke, make bench-gpu) run on the CPU, so they cannot rot unseen;
without a GPU their default run says so and exits 0."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def _run(script, *args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the scripts would run on it")
@pytest.mark.parametrize("script", ["gpu_smoke.py", "gpu_benchmark.py"])
def test_without_a_gpu_says_so_and_exits_0(script, tmp_path):
    proc = _run(script, "--out", str(tmp_path / "report.json"))
    assert proc.returncode == 0 and "no CUDA GPU" in proc.stdout
    assert not (tmp_path / "report.json").exists()


def test_smoke_test_on_the_cpu_passes_its_checks(tmp_path):
    out = tmp_path / "smoke.json"
    proc = _run("gpu_smoke.py", "--device", "cpu", "--width", "8", "--steps", "32", "--probe-epochs", "1",
                "--n-train", "512", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["profile"]["steps"] == 32 and report["train"]["images_per_s_overall"] > 0
    assert report["checks"] and all(report["checks"].values()), report["checks"]


def test_benchmark_on_the_cpu_estimates_the_paper_profile(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run("gpu_benchmark.py", "--device", "cpu", "--width", "8", "--epochs", "2", "--n-train", "512",
                "--variants", "fp32 + channels_last", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    rate = report["rates"]["fp32 + channels_last"]
    est = report["paper_profile_estimate"]
    # 200 epochs x 50,000 images x (4 + 8 + 2 + 2) rotations; 13 probes x 50 epochs x 50,000
    assert est["workload"]["rotnet_rows"] == 160_000_000 and est["workload"]["probe_rows"] == 32_500_000
    expected = (170_000_000 / rate["rotnet_step_images_per_s"] + 32_500_000 / rate["probe_step_images_per_s"]) / 3600
    assert est["hours"] == pytest.approx(expected, rel=1e-3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here and usable")
def test_a_gpu_that_torch_cannot_use_fails_loud(tmp_path, capsys):
    """A GPU host with a CPU-only wheel or a too-old driver must not pass by saying "no GPU" (files mocked)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from gpu_smoke import cuda_gate
    finally:
        sys.path.pop(0)
    assert cuda_gate("cuda", "gpu-smoke", root=str(tmp_path)) == 0              # no driver, no device node
    assert cuda_gate("cpu", "gpu-smoke", root=str(tmp_path)) is None            # the CPU run goes on
    (tmp_path / "proc/driver/nvidia").mkdir(parents=True)
    (tmp_path / "proc/driver/nvidia/version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.54\n")
    assert cuda_gate("cuda", "bench-gpu", root=str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "535.54" in err and f"torch.version.cuda = {torch.version.cuda}" in err


def test_a_failing_benchmark_variant_is_recorded_and_the_others_kept(monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_benchmark as G
    finally:
        sys.path.pop(0)

    def fake_time_fit(model, data, task, cfg, device, rows, compile):
        if compile:
            raise RuntimeError("inductor: no C compiler\nmore lines")
        return 1000.0

    monkeypatch.setattr(G, "_time_fit", fake_time_fit)
    seen = []
    rates = G.measure("cpu", 1, 8, list(G.VARIANTS), n_train=64, on_variant=lambda r: seen.append(dict(r)))
    assert rates["bf16 + channels_last + torch.compile"] == {"failed": "RuntimeError: inductor: no C compiler"}
    assert rates["fp32 + channels_last"]["rotnet_step_images_per_s"] == 1000
    assert [len(r) for r in seen] == [1, 2, 3]                                  # reported after each variant
    assert G.estimate(rates)["variant"] in ("bf16 + channels_last", "fp32 + channels_last")
    assert G.estimate({"x": {"failed": "E"}})["hours"] is None
