"""The results file: one source per number, its spread, the README table, the notebook check and CI's comparison."""
import json
import math

import nbformat
import pytest

from rotlib import results as R
from rotlib.profiles import get_profile


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTLIB_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def test_summarize_mean_and_sample_std():
    s = R.summarize([60.0, 62.0])
    assert s["value"] == 61.0 and s["n"] == 2
    assert s["std"] == pytest.approx(math.sqrt(2), abs=0.01)          # sample std (n - 1), not population
    assert R.summarize([55.5])["std"] == 0.0
    with pytest.raises(ValueError):
        R.summarize([])


def test_record_writes_and_merges(results_dir):
    profile = get_profile("quick")
    e = R.record("table2.4", [60.0, 62.0], profile, "06", paper=89.06)
    R.record("rotation_accuracy", [70.0, 71.0], profile, "02")
    data = json.loads((results_dir / "quick.json").read_text())
    assert set(data) == {"table2.4", "rotation_accuracy"}
    assert data["table2.4"]["paper"] == 89.06 and data["table2.4"]["notebook"] == "06"
    assert data["table2.4"]["values"] == [60.0, 62.0]
    assert repr(e) == "table2.4: 61.00 ± 1.41 (n=2, paper 89.06)"
    assert not list(results_dir.glob("*.tmp*"))
    with pytest.raises(ValueError, match="quantity names"):
        R.record("bad name!", [1.0], profile, "02")


def test_tolerance_from_spread_with_a_floor():
    assert R.tolerance({"std": 0.0, "n": 2}) == R.MIN_TOLERANCE
    assert R.tolerance({"std": 2.0, "n": 2}) == pytest.approx(6.0)    # 3 * 2 * sqrt(2/2)


def test_difference_verdicts():
    a = {"value": 60.0, "std": 0.5, "n": 2}
    assert R.difference(a, {"value": 50.0, "std": 0.5, "n": 2})["verdict"] == "higher"
    assert R.difference(a, {"value": 70.0, "std": 0.5, "n": 2})["verdict"] == "lower"
    assert R.difference(a, {"value": 60.4, "std": 0.5, "n": 2})["verdict"] == "tie"


def test_compare_flags_moved_and_missing_values():
    committed = {"a": {"value": 60.0, "tol": 1.0}, "b": {"value": 50.0, "tol": 2.0}, "c": {"value": 1.0, "tol": 1.0}}
    fresh = {"a": {"value": 60.9}, "b": {"value": 47.5}}
    problems = R.compare(fresh, committed)
    assert len(problems) == 2
    assert problems[0].startswith("b: fresh 47.50 vs committed 50.00") and problems[1].startswith("c:")


def test_verdicts_are_recorded_and_compared(results_dir):
    profile = get_profile("quick")
    a = R.record("table2.4", [60.0, 61.0], profile, "06")
    b = R.record("table2.8", [55.0, 56.0], profile, "06")
    assert R.difference(a, b)["verdict"] == "higher"
    path = R.verdicts_path(results_dir / "quick.json")
    committed = json.loads(path.read_text())
    assert committed["table2.4 vs table2.8"]["verdict"] == "higher" and committed["table2.4 vs table2.8"]["notebook"] == "06"
    R.difference(a, R.record("table2.8", [60.0, 59.0], profile, "06"))          # a fresh run: now a tie
    fresh = json.loads(path.read_text())
    assert R.compare_verdicts(fresh, committed) == [
        "verdict table2.4 vs table2.8: fresh 'tie' (+1.00, threshold 1.42) vs committed 'higher' (+5.00, threshold "
        "1.42)"]
    assert R.compare_verdicts(committed, committed) == []
    assert R.compare_verdicts({}, committed)[0].endswith("not stated by the fresh run")
    # the command line fails on a flipped verdict even when every value is within its tolerance
    (results_dir / "fresh").mkdir()
    (results_dir / "fresh" / "quick.json").write_text((results_dir / "quick.json").read_text())
    R.verdicts_path(results_dir / "fresh" / "quick.json").write_text(json.dumps(fresh))
    R.verdicts_path(results_dir / "quick.json").write_text(json.dumps(committed))
    assert R.main(["compare", str(results_dir / "fresh" / "quick.json"), str(results_dir / "quick.json")]) == 1


def _notebook(path, markdown, output):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("x")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), code]
    nbformat.write(nb, path)
    return path


def test_check_notebooks_finds_numbers_not_in_the_file(tmp_path):
    results = {"x": {"value": 59.04, "std": 0.42}, "g": {"value": 11.4, "std": 0.3}}
    good = _notebook(tmp_path / "good.ipynb", "RotNet 59.0 ± 0.4 beats random by 11.4 ± 0.3 points",
                     "x: 59.04 ± 0.42 (n=2)")
    assert R.check_notebooks(results, [good]) == []
    bad = _notebook(tmp_path / "bad.ipynb", "RotNet 59.1 ± 0.4", "x: 59.04 ± 0.52")
    problems = R.check_notebooks(results, [bad])
    assert len(problems) == 2 and "59.1 ± 0.4" in problems[0] + problems[1]


def test_readme_table_is_generated_and_spliced(results_dir, tmp_path):
    profile = get_profile("quick")
    R.record("table1.nonlinear.rotnet.conv2", [58.0, 60.0], profile, "03", paper=89.06)
    table = R.readme_table()
    assert "| Table 1, RotNet + non-linear, conv1 / conv2 / conv3 / conv4 |" in table
    assert "59.0 ± 1.4" in table and "89.06" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{R.TABLE_START}\nold\n{R.TABLE_END}\nmiddle\n{R.MODELS_START}\nstale\n{R.MODELS_END}\n"
                      "outro\n")
    R.write_readme(readme)
    text = readme.read_text()
    assert "old" not in text and "stale" not in text and "59.0 ± 1.4" in text
    assert text.startswith("intro") and "middle" in text and text.endswith("outro\n")
    assert "| RotNet, 4 rotations, 32 epochs | 3 | 32 |" in text          # the shipped models' table
    readme.write_text(f"intro\n{R.TABLE_START}\nold\n{R.TABLE_END}\n")
    with pytest.raises(ValueError, match="lacks the markers"):
        R.write_readme(readme)


def test_a_perturbed_run_widens_tolerances_and_marks_fragile_verdicts():
    committed = {"a": {"value": 50.0, "tol": 1.0}, "b": {"value": 40.0, "tol": 1.0}}
    perturbed = {"a": {"value": 48.5}, "b": {"value": 40.2}}
    fresh = {"a": {"value": 47.5}, "b": {"value": 41.5}}
    assert [p.split(":")[0] for p in R.compare(fresh, committed)] == ["a", "b"]
    assert [p.split(":")[0] for p in R.compare(fresh, committed, perturbed)] == ["b"]   # a: ±3.0 now, b: still ±1.0
    v = lambda word: {"verdict": word, "diff": 0.0, "threshold": 1.0}
    old, pert = {"x": v("tie"), "y": v("tie")}, {"x": v("lower"), "y": v("tie")}
    new = {"x": v("lower"), "y": v("lower")}
    assert R.fragile_verdicts(old, pert) == ["x"]
    assert [p.split()[1] for p in R.compare_verdicts(new, old, pert)] == ["y:"]           # x may flip, y may not
