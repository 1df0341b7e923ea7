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
