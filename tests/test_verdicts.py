"""The one verdict rule: paired or unpaired, the threshold, the paper's claim, recording, CI's comparison and the
markdown check."""
import json

import nbformat
import pytest

from rotlib import readme as README
from rotlib import results as R
from rotlib import verdicts as V
from rotlib.profiles import get_profile


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTLIB_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def entry(name, values):
    return {"name": name, **R.summarize(values)}


def test_paired_and_unpaired_standard_errors():
    # per-seed differences 2, 3, 4: mean 3, sd 1, se 1/sqrt(3) = 0.58, threshold 1.16
    a, b = entry("a", [52.0, 60.0, 44.0]), entry("b", [50.0, 57.0, 40.0])
    v = V.judge(a, b, paired=True)
    assert (v.diff, v.se, v.threshold, v.word) == (3.0, 0.58, 1.16, "higher")
    # unpaired, the seed-to-seed spread (sd 8 and 8.5) swamps the same difference: a tie
    u = V.judge(a, b, paired=False)
    assert u.diff == 3.0 and u.se == pytest.approx(6.76, abs=0.01) and u.word == "tie"
    assert str(v) == "higher: +3.00 points, paired over 3 seeds; standard error 0.58, tie threshold 1.16"


def test_words_against_the_papers_claim():
    hi, lo, same = entry("hi", [60.0, 61.0, 62.0]), entry("lo", [50.0, 51.5, 52.0]), entry("s", [60.5, 60.5, 62.5])
    assert V.judge(hi, lo, paired=True, claim="higher").word == "agrees"
    assert V.judge(hi, lo, paired=True, claim="lower").word == "differs"
    assert V.judge(lo, hi, paired=True, claim="lower").word == "agrees"
    assert V.judge(hi, same, paired=True, claim="higher").word == "tie"
    assert V.judge(hi, lo, paired=True).word == "higher"
    with pytest.raises(ValueError, match="claim"):
        V.judge(hi, lo, paired=True, claim="better")
    with pytest.raises(ValueError, match="one value per seed"):
        V.judge(hi, entry("x", [1.0, 2.0]), paired=True)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        V.judge(entry("x", [1.0]), entry("y", [2.0]), paired=True)


def test_verdicts_are_recorded_and_compared(results_dir):
    profile = get_profile("quick")
    a = R.record("table2.4", [60.0, 61.0, 62.0], profile, "06")
    b = R.record("table2.8", [55.0, 56.5, 57.0], profile, "06")
    v = V.state(a, b, paired=True, claim="higher", label="4 beat 8")
    committed = V.load(results_dir / "quick.json")
    assert committed["table2.4 vs table2.8"]["word"] == "agrees" == v.word
    assert committed["table2.4 vs table2.8"]["notebook"] == "06"
    V.state(a, R.record("table2.8", [60.0, 60.5, 63.0], profile, "06"), paired=True, claim="higher")   # now a tie
    fresh = V.load(results_dir / "quick.json")
    assert V.compare(fresh, committed) == [
        "verdict table2.4 vs table2.8: fresh 'tie' (-0.17, threshold 0.88) vs committed 'agrees' (+4.83, threshold "
        "0.34)"]
    assert V.compare(committed, committed) == [] and V.compare({}, committed)[0].endswith("not stated by the fresh run")
    # a perturbed run whose values give "tie" makes the verdict fragile: either word passes
    perturbed = {"table2.4": entry("table2.4", [60.0, 61.0, 62.0]), "table2.8": entry("table2.8", [59.0, 61.5, 62.0])}
    assert V.fragile(committed, perturbed) == ["table2.4 vs table2.8"] and V.compare(fresh, committed, perturbed) == []
    # the command line fails on a flipped verdict even when every value is within its tolerance
    (results_dir / "fresh").mkdir()
    (results_dir / "fresh" / "quick.json").write_text((results_dir / "quick.json").read_text())
    V.verdicts_path(results_dir / "fresh" / "quick.json").write_text(json.dumps(fresh))
    V.verdicts_path(results_dir / "quick.json").write_text(json.dumps(committed))
    assert R.main(["compare", str(results_dir / "fresh" / "quick.json"), str(results_dir / "quick.json")]) == 1
    assert "| 06 | 4 beat 8 | — | +4.83 | 0.34 | agrees |" in README.claims_table()
    (results_dir / "quick-fp32eval.json").write_text(json.dumps(perturbed))
    assert "| 06 | 4 beat 8 | — | +4.83 | 0.34 | agrees (fragile: tie with fp32 evaluation) |" in README.claims_table()
    assert list(V.table([v]).loc["4 beat 8"]) == ["higher", "—", "+4.83", "0.34", "paired, 3 seeds", "agrees"]


def test_markdown_must_say_the_word_the_rule_gave(tmp_path):
    verdicts = {"a vs b": {"word": "tie", "diff": 1.0, "threshold": 2.0}}
    ok = "Within the threshold: <!-- verdict: a vs b -->**Verdict: tie.** Not resolved at this budget."
    assert V.check_markdown(ok, verdicts, "nb") == []
    assert V.check_markdown("<!-- verdict: a vs b -->**tie**, and so", verdicts, "nb") == []
    wrong = V.check_markdown("<!-- verdict: a vs b -->**agrees**", verdicts, "nb")
    assert len(wrong) == 1 and "the rule gave 'tie'" in wrong[0]
    assert "not recorded" in V.check_markdown("<!-- verdict: c vs d -->**tie**", verdicts, "nb")[0]
    assert "without its marker" in V.check_markdown("so the claim **agrees**.", verdicts, "nb")[0]
    assert "markdown table" in V.check_markdown("| claim | ours | verdict |\n|---|---|---|\n| x | 1 | agrees |",
                                                verdicts, "nb")[0]
    # through the notebook check: a wrong word in a stored notebook fails make check-results
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("<!-- verdict: a vs b -->**differs**")]
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert len(R.check_notebooks({}, [tmp_path / "n.ipynb"], verdicts)) == 1
