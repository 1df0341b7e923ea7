import json

from rotlib.__main__ import main


def test_cli_train_and_evaluate(tiny, tmp_path, capsys):
    out = tmp_path / "train.json"
    args = ["--dataset", "cifar10", "--profile", "quick", "--width", "16", "--blocks", "3", "--epochs", "1",
            "--device", "cpu"]
    assert main(["train", *args, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert 0 <= res["rotation_accuracy"] <= 100 and "rotation accuracy" in capsys.readouterr().out
    out2 = tmp_path / "eval.json"
    assert main(["evaluate", *args, "--classifier", "linear", "--out", str(out2)]) == 0
    res = json.loads(out2.read_text())
    assert set(res["rotnet"]) == set(res["random_init"]) == {"conv1", "conv2", "conv3"}
    assert "random init" in capsys.readouterr().out


def test_cli_reports_missing_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ROTLIB_DATA", str(tmp_path))
    monkeypatch.setenv("ROTLIB_OFFLINE", "1")
    assert main(["train", "--dataset", "cifar10"]) == 2
    assert "cifar-10-python.tar.gz" in capsys.readouterr().err
