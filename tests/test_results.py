"""The results file: one source per number, its spread, the README table, the notebook check and CI's comparison."""
import json
import math

import nbformat
import pytest

from rotlib import readme as README
from rotlib import report
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


def test_compare_flags_moved_and_missing_values():
    committed = {"a": {"value": 60.0, "tol": 1.0}, "b": {"value": 50.0, "tol": 2.0}, "c": {"value": 1.0, "tol": 1.0}}
    fresh = {"a": {"value": 60.9}, "b": {"value": 47.5}}
    problems = report.compare(fresh, committed)
    assert len(problems) == 2
    assert problems[0].startswith("b: fresh 47.50 vs committed 50.00") and problems[1].startswith("c:")


def _notebook(path, markdown, output):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("x")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), code]
    nbformat.write(nb, path)
    return path


def test_check_notebooks_finds_numbers_not_in_the_file(tmp_path):
    results = {"x": {"value": 59.04, "std": 0.42, "notebook": "03"}, "g": {"value": 11.4, "std": 0.3, "notebook": "03"}}
    good = _notebook(tmp_path / "03_good.ipynb", "RotNet 59.0 ± 0.4 beats random by 11.4 ± 0.3 points",
                     "x: 59.04 ± 0.42 (n=2)")
    assert report.check_notebooks(results, [good]) == []
    bad = _notebook(tmp_path / "03_bad.ipynb", "RotNet 59.1 ± 0.4", "x: 59.04 ± 0.52")
    problems = report.check_notebooks(results, [bad])
    assert len(problems) == 2 and "59.1 ± 0.4" in problems[0] + problems[1]


def test_markdown_quotes_only_its_own_notebooks_numbers_or_a_named_ones(tmp_path):
    """A hand-written number must be the notebook's own quantity, or one of a notebook the cell names: a pair that
    happens to equal some other notebook's quantity is not enough."""
    results = {"mine": {"value": 50.0, "std": 1.0, "notebook": "02"},
               "theirs": {"value": 61.26, "std": 1.21, "notebook": "06", "notebooks": ["03", "06"]}}
    unnamed = _notebook(tmp_path / "02_a.ipynb", "ours 50.0 ± 1.0, and 61.26 ± 1.21", "")
    assert [p for p in report.check_notebooks(results, [unnamed]) if "61.26" in p]
    named = _notebook(tmp_path / "02_b.ipynb", "ours 50.0 ± 1.0, and 61.26 ± 1.21 in notebook 3", "")
    assert report.check_notebooks(results, [named]) == []
    printed = _notebook(tmp_path / "02_c.ipynb", "ours", "61.26 ± 1.21")       # outputs come from the code
    assert report.check_notebooks(results, [printed]) == []


def test_a_quantity_remembers_every_notebook_that_recorded_it(results_dir):
    profile = get_profile("quick")
    R.record("q", [1.0, 2.0], profile, "02")
    R.record("q", [1.0, 2.0], profile, "06")
    assert R.load("quick", results_dir)["q"]["notebooks"] == ["02", "06"]


def test_readme_table_is_generated_and_spliced(results_dir, tmp_path):
    profile = get_profile("quick")
    R.record("table1.nonlinear.rotnet.conv2", [58.0, 60.0], profile, "03", paper=89.06)
    table = README.readme_table()
    assert "| Table 1, RotNet + non-linear, conv1 / conv2 / conv3 / conv4 |" in table
    assert "59.0 ± 1.4" in table and "89.06" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README.TABLE_START}\nold\n{README.TABLE_END}\nmiddle\n"
                      f"{README.CLAIMS_START}\nold claims\n{README.CLAIMS_END}\noutro\n")
    README.write_readme(readme)
    text = readme.read_text()
    assert "old" not in text and "59.0 ± 1.4" in text
    assert "No verdicts are recorded yet" in text          # the claims table, from results/quick.verdicts.json
    assert text.startswith("intro") and "middle" in text and text.endswith("outro\n")
    assert README.MODELS_START not in text                # the shipped models' table lives in docs/models.md
    page = tmp_path / "models.md"                         # docs/models.md: the shipped models' table (issue 33)
    page.write_text(f"# The shipped models\n{README.MODELS_START}\nstale\n{README.MODELS_END}\nafter\n")
    README.write_models_page(page)
    text = page.read_text()
    assert "stale" not in text and text.startswith("# The shipped models") and text.endswith("after\n")
    assert "| RotNet, 4 rotations, 32 epochs | 3 | 32 |" in text          # the shipped models' table
    readme.write_text(f"intro\n{README.TABLE_START}\nold\n{README.TABLE_END}\n")
    with pytest.raises(ValueError, match="lacks the markers"):
        README.write_readme(readme)
    page.write_text("no markers\n")
    with pytest.raises(ValueError, match="docs/models.md lacks the markers"):
        README.write_models_page(page)


def test_the_checkouts_generated_tables_are_on_their_pages():
    """README.md holds the results and claims tables' markers, docs/models.md the shipped models' (issue 33), and
    the check reads both (whether their contents are as generated is `make check-results`' job: under `make test`
    ROTLIB_RESULTS points at the fresh results)."""
    readme = README.readme_path().read_text()
    assert README.TABLE_START in readme and README.CLAIMS_START in readme and README.MODELS_START not in readme
    assert README.MODELS_START in README.models_page_path().read_text()
    assert [p for p, _ in README.generated_pages()] == [README.readme_path(), README.models_page_path()]
    assert README.models_page_path() in README.checked_pages()


def test_runs_on_other_cpu_kinds_widen_tolerances():
    committed = {"a": {"value": 50.0, "tol": 1.0}, "b": {"value": 40.0, "tol": 1.0}}
    evidence = {"cpu-1": {"a": {"value": 48.5}, "b": {"value": 40.2}}, "cpu-2": {"a": {"value": 50.9}}}
    fresh = {"a": {"value": 47.5}, "b": {"value": 41.5}}
    assert [p.split(":")[0] for p in report.compare(fresh, committed)] == ["a", "b"]
    assert [p.split(":")[0] for p in report.compare(fresh, committed, evidence)] == ["b"]   # a: ±3.0 now, b: still ±1.0
    assert report.cross_kind_tolerance("a", committed["a"], evidence) == 3.0


def test_a_changed_profile_never_writes_the_committed_file(results_dir):
    """An exercise's changed profile (more seeds, fewer epochs, another dataset) files its numbers and verdicts in
    results/scratch/, so results/quick.json and make check-results stay as committed."""
    from rotlib import verdicts as V
    quick = get_profile("quick")
    a = R.record("table2.4", [60.0, 61.0, 62.0], quick, "06")
    committed = (results_dir / "quick.json").read_text()
    assert R.results_name(quick.replace(device="cpu")) == "quick"
    for changed in (quick.replace(ablation_seeds=(0, 1, 2, 3, 4)), quick.replace(rotnet_epochs=8),
                    get_profile("quick", dataset="fashion-mnist"), quick.replace(device="cuda")):  # GPU kernels
        name = R.results_name(changed)
        assert name.startswith("scratch/quick-")
        b = R.record("table2.4", [50.0, 51.0, 52.0], changed, "06")
        V.state(b, R.record("table2.8", [40.0, 41.0, 42.0], changed, "06"), paired=True, claim="lower")
        assert (results_dir / f"{name}.json").exists() and (results_dir / f"{name}.verdicts.json").exists()
    assert len({R.results_name(p) for p in (quick.replace(rotnet_epochs=8), quick.replace(rotnet_epochs=4))}) == 2
    assert (results_dir / "quick.json").read_text() == committed and not (results_dir / "quick.verdicts.json").exists()
    assert a["profile"] == "quick"


def test_a_registered_profile_on_the_device_it_resolves_to_keeps_its_file(monkeypatch):
    paper = get_profile("paper")                                          # device "auto"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert R.results_name(paper.replace(device="cuda")) == R.results_name(paper.replace(device="cuda:1")) == "paper"
    assert R.results_name(paper.replace(device="cpu")).startswith("scratch/")


def test_a_notebook_run_by_hand_writes_only_scratch(tmp_path, monkeypatch):
    """Without $ROTLIB_RESULTS (a student running a notebook or an exercise by hand) results and verdicts go to
    results/scratch/; only make notebooks (ROTLIB_RESULTS=results) writes the committed files."""
    from rotlib import verdicts as V
    monkeypatch.delenv("ROTLIB_RESULTS", raising=False)
    monkeypatch.setenv("ROTLIB_HOME", str(tmp_path))
    quick = get_profile("quick")
    a = R.record("table2.4", [60.0, 61.0, 62.0], quick, "06")
    V.state(a, R.record("table2.8", [55.0, 56.0, 57.0], quick, "06"), paired=True, claim="higher")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["scratch"]
    assert (tmp_path / "results" / "scratch" / "quick.json").exists()
    assert (tmp_path / "results" / "scratch" / "quick.verdicts.json").exists()


def test_requote_rewrites_quotes_of_the_old_numbers_and_lists_the_rest():
    """After make notebooks records again: a pair that identifies its quantity and a verdict's parenthesis are
    rewritten; a pair two quantities shared (now apart), a changed verdict word and a per-seed number are listed."""
    from rotlib.requote import requote_text
    from rotlib.verdicts import stated_word
    old = {"a": {"value": 62.0, "std": 0.56}, "b": {"value": 48.5, "std": 1.2}, "c": {"value": 48.5, "std": 1.2},
           "gap": {"value": 13.5, "std": 1.92}}
    new = {"a": {"value": 62.8, "std": 0.61}, "b": {"value": 47.9, "std": 1.0}, "c": {"value": 48.1, "std": 1.1},
           "gap": {"value": 14.9, "std": 1.5}}
    verdict = {"word": "agrees", "firm": True, "diff": 13.5, "threshold": 2.22, "margin": 5.46}
    moved = {"word": "tie", "firm": False, "diff": -0.5, "threshold": 1.0, "margin": 3.0}
    text = ("RotNet 62.00 ± 0.56% vs 48.50 ± 1.20% (gap 13.50 ± 1.92, seeds 12.9, 13.50): <!-- verdict: a vs b -->"
            "**agrees** (+13.50 points, threshold 2.22, margin 5.46). Random: -13.50 ± 1.92 the other way; "
            "<!-- verdict: x vs y -->**tie** (−0.50, threshold 1.00).")
    done = requote_text(text, old, new, {"a vs b": verdict, "x vs y": moved},
                        {"a vs b": {**verdict, "diff": 14.9, "threshold": 1.73, "margin": 4.1},
                         "x vs y": {**moved, "word": "differs", "diff": -1.2, "threshold": 0.8}}, stated_word)
    assert "62.80 ± 0.61" in done.text and "gap 14.90 ± 1.50" in done.text and "-14.90 ± 1.50" in done.text
    assert "**agrees** (+14.90 points, threshold 1.73, margin 4.10)" in done.text
    assert "**tie** (−1.20, threshold 0.80)" in done.text
    assert "48.50 ± 1.20" in done.text                                   # b and c shared it: not guessed
    assert done.changed == 8
    assert any("several quantities" in c for c in done.check)
    assert any("'x vs y'" in c and "'differs'" in c for c in done.check)
    assert any("13.50" in c for c in done.check)                         # the per-seed list's 13.50
    # a list of a moved quantity's old per-seed values (one decimal: not caught as a single number) is listed
    seeds_old = {"gap": {"value": 1.57, "std": 0.12, "values": [1.7, 1.5, 1.5]}}
    seeds_new = {"gap": {"value": 1.5, "std": 0.53, "values": [1.3, 2.1, 1.1]}}
    listed = requote_text("the three differences (1.7, 1.5, 1.5) agree", seeds_old, seeds_new, {}, {}, stated_word)
    assert listed.check == ["the old per-seed values of gap are quoted (1.7, 1.5, 1.5): now 1.30, 2.10, 1.10"]
    assert requote_text("differences 1.3, 2.1, 1.1", seeds_old, seeds_new, {}, {}, stated_word).check == []
    # an old verdict difference quoted in prose, away from its marker, is listed
    prose = requote_text("conv2 beats conv4 by 19.93 points", {}, {}, {"c4 vs c2": {**verdict, "diff": -19.93}},
                         {"c4 vs c2": {**verdict, "diff": -20.37}}, stated_word)
    assert prose.check == ["numbers equal to an old value of a quantity that moved (per-seed lists, differences in "
                           "prose?): 19.93"]
