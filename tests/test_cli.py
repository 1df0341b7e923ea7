import json

import pytest

from rotlib.__main__ import main
from rotlib.profiles import get_profile


def test_cli_train_and_evaluate(tiny, tmp_path, capsys):
    out = tmp_path / "train.json"
    args = ["--dataset", "cifar10", "--profile", "quick", "--width", "16", "--blocks", "3", "--epochs", "1",
            "--device", "cpu"]
    assert main(["train", *args, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    correct = res["rotation_accuracy"] * res["n_test"] * 4 / 100       # every test image in 4 rotations
    assert res["n_test"] == 40 and abs(correct - round(correct)) < 1e-4
    assert f"rotation accuracy {res['rotation_accuracy']:.2f}% on 40 test images" in capsys.readouterr().out
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


@pytest.mark.parametrize("command,option,value", [
    ("train", "--epochs", "0"), ("train", "--n-train", "0"), ("train", "--n-train", "-5"), ("train", "--width", "0"),
    ("train", "--width", "1"), ("train", "--blocks", "2"), ("train", "--epochs", "1.5"),
    ("evaluate", "--per-class", "0")])
def test_cli_refuses_bad_numbers(command, option, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be a whole number, at least" in err and repr(value) in err


def test_cli_per_class_beyond_the_data_fails_before_training(tiny, cache, capsys):
    code = main(["evaluate", "--dataset", "cifar10", "--profile", "quick", "--width", "8", "--blocks", "3",
                 "--device", "cpu", "--per-class", "1000"])
    assert code == 2 and "1000 labelled images per class requested" in capsys.readouterr().err
    assert not list(cache.glob("*.pt"))                  # no RotNet was trained first


@pytest.mark.parametrize("change,message", [
    ({"rotnet_epochs": 0}, "rotnet_epochs.*at least 1.*untrained"), ({"n_train": 0}, "n_train.*at least 1"),
    ({"n_train": -5}, "n_train"), ({"width": 1}, "width.*at least 2"), ({"num_blocks": 2}, "num_blocks.*at least 3"),
    ({"classifier_epochs": 0}, "classifier_epochs"), ({"lr": -0.1}, "lr"), ({"precision": "half"}, "precision"),
    ({"rotnet_milestones": (0.9, 0.1)}, "rotnet_milestones")])
def test_profile_refuses_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        get_profile("quick", **change)


def test_every_profile_setting_can_be_set_from_the_command_line(tiny, tmp_path):
    out = tmp_path / "train.json"
    assert main(["train", "--dataset", "cifar10", "--profile", "quick", "--width", "8", "--blocks", "3",
                 "--epochs", "1", "--device", "cpu", "--set", "lr=0.05", "--set", "augment=false",
                 "--set", "rotnet_milestones=[0.5]", "--out", str(out)]) == 0
    profile = json.loads(out.read_text())["profile"]
    assert (profile["lr"], profile["augment"], profile["rotnet_milestones"]) == (0.05, False, [0.5])


@pytest.mark.parametrize("setting,message", [("nonsense=1", "FIELD one of"), ("lr", "FIELD=VALUE"),
                                             ("lr=-1", "lr"), ("width=wide", "width")])
def test_a_bad_setting_is_refused_with_the_fields_named(setting, message, capsys):
    assert main(["train", "--set", setting]) == 2
    assert message in capsys.readouterr().err
