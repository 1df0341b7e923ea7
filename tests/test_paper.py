"""The paper's quantities: one computation each, over seeds, recorded once; equal compute across rotation sets."""
import json

import pytest

from rotlib import experiments as E
from rotlib import paper as P


@pytest.fixture
def two_seeds(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ROTLIB_RESULTS", str(tmp_path / "results"))
    return tiny.replace(seeds=(0, 1))


def test_one_source_for_table1_table2_table3(two_seeds):
    profile = two_seeds
    t1 = P.table1(profile, kinds=("rotnet", "random"))
    t2 = P.table2(profile, sets=("4",))
    t3 = P.table3(profile)
    assert t1["rotnet.conv2"]["values"] == t2["4"]["values"] == t3["rotnet_nonlinear"]["values"]
    assert t1["rotnet.conv2"]["n"] == 2 and t1["rotnet.conv2"]["paper"] == 89.06
    gap = [a - b for a, b in zip(t1["rotnet.conv2"]["values"], t1["random.conv2"]["values"])]
    assert t1["gap.conv2"]["values"] == pytest.approx(gap, abs=0.011)
    saved = json.loads(P.R.results_path(P.R.results_name(profile)).read_text())   # not registered: results/scratch/
    assert saved["table2.4"]["values"] == t2["4"]["values"]


def test_rotation_sets_train_with_equal_compute(two_seeds):
    profile = two_seeds.replace(seeds=(0,))
    steps = {s: len(E.train_rotnet(profile, s).history["step_loss"]) for s in ("4", "8", "2-0/180")}
    assert steps["8"] == steps["4"] == steps["2-0/180"]
    paper_protocol = profile.replace(rotation_budget="epochs")
    assert len(E.train_rotnet(paper_protocol, "8").history["epoch_loss"]) == profile.rotnet_epochs
    with pytest.raises(ValueError, match="whole numbers"):
        E.train_rotnet(profile.replace(batch_size=3), "8")


def test_fig5_crossover_per_seed(two_seeds):
    out = P.fig5(two_seeds, per_class=(2, None))
    assert set(out["rotnet"]) == {2, None} and len(out["crossover"]) == 2
    assert out["labels"][0] == 2 * 10
    # the fixture's "all labels" is not the paper's 5,000 per class: no paper number beside it
    assert out["rotnet"][None]["paper"] is None and out["supervised"][None]["paper"] is None


def test_the_papers_all_labels_end_point_only_at_its_budget(two_seeds, monkeypatch):
    """Fig. 5(b)'s all-labels numbers (91.16, 92.80) stand beside ours only where "all" is CIFAR-10's 50,000."""
    assert not P.all_labels_are_the_papers(two_seeds)                           # the small CIFAR-format fixture
    assert not P.all_labels_are_the_papers(two_seeds.replace(dataset="cifar10-5k"))
    monkeypatch.setattr(P.E, "labelled_subset", lambda profile, per_class: range(50_000))
    assert P.all_labels_are_the_papers(two_seeds)
    assert not P.all_labels_are_the_papers(two_seeds.replace(dataset="cifar10-5k"))


def test_batching_compares_each_variant_of_the_profile_with_all_four(two_seeds):
    """P.batching: one entry per variant of profile.batching, and all-4 minus each one-random variant seed by seed
    ("gap": equal compute; "gap.images": the same images per batch, the paper's wording)."""
    one_seed = two_seeds.replace(seeds=(0,))
    out = P.batching(one_seed.replace(batching=("all", "random", "random-images")), per_class=2)
    assert {"all4", "random1", "random1images", "gap", "gap.images"} == set(out)
    for key, other in (("gap", "random1"), ("gap.images", "random1images")):
        diff = [a - b for a, b in zip(out["all4"]["values"], out[other]["values"])]
        assert out[key]["values"] == pytest.approx(diff, abs=0.011)
    assert out["gap.images"]["name"] == "gap.batching.images.2"
    assert set(P.batching(one_seed, per_class=2)) == {"all4", "random1", "gap"}       # the default: equal compute
    for wrong in (("random", "all"), ("all", "random", "random"), ("all", "random-4")):
        with pytest.raises(ValueError, match="batching must start with 'all'"):
            two_seeds.replace(batching=wrong)
