import json
import os
import subprocess
import sys

from rotlib.__main__ import main
from rotlib.reproduce import PAPER


def test_reproduce_end_to_end_on_tiny_cifar(tiny, tmp_path, capsys):
    out = tmp_path / "results"
    args = ["reproduce", "--dataset", "cifar10", "--profile", "paper", "--epochs", "2", "--width", "16",
            "--blocks", "4", "--n-train", "200", "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    first_run = capsys.readouterr().out
    assert "not in the cache" in first_run
    res = json.loads((out / "reproduce-paper.json").read_text())
    assert set(res["table1"]) == set(PAPER["table1"])
    assert set(res["table2"]) == set(PAPER["table2"])
    assert set(res["table3"]) == set(PAPER["table3"])
    for t in ("table1", "table2", "table3"):             # accuracies over the 40 test images: multiples of 2.5%
        assert all(abs(v / 2.5 - round(v / 2.5)) < 1e-4 for v in res[t].values()), res[t]
    assert res["table3"]["RotNet + non-linear"] == res["table1"]["conv2"] == res["table2"]["4"]
    md = (out / "reproduce-paper.md").read_text()
    assert "| conv2 | 89.06 |" in md and "| RotNet + conv | 91.16 |" in md
    assert f"| conv2 | 89.06 | {res['table1']['conv2']:.2f} |" in md
    # a second run loads everything from the cache (resume after interruption works the same way)
    assert main(args) == 0
    second_run = capsys.readouterr().out
    assert "[cache] loaded" in second_run and "not in the cache" not in second_run
    again = json.loads((out / "reproduce-paper.json").read_text())
    assert all(again[t] == res[t] for t in ("table1", "table2", "table3"))


def test_reproduce_under_torchrun_two_cpu_processes(tiny, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", "-m", "rotlib",
           "reproduce", "--dataset", "cifar10", "--profile", "paper", "--epochs", "2", "--width", "8", "--blocks", "3",
           "--n-train", "200", "--device", "cpu", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "reproduce-paper.json").read_text())
    assert res["world_size"] == 2 and set(res["table3"]) == set(PAPER["table3"])
