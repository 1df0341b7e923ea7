"""The probes' results shipped in models/measures/ (make measures): found only under their exact key, checked
against their manifest, and what today's code computes (a sample of every kind is computed again here)."""
import json

import pytest

from rotlib import evidence, results
from rotlib import shipped as S
from rotlib import store
from rotlib.cache import cached_json, entry_stem
from rotlib.profiles import get_profile

KEY = {"backbone": "0123456789abcdef", "block": "conv2", "classifier": "nonlinear", "per_class": None, "seed": 0,
       "precision": "bf16"}


@pytest.fixture
def models(tmp_path, monkeypatch):
    path = tmp_path / "models"
    monkeypatch.setenv("ROTLIB_MODELS", str(path))
    return path


def _ship(result=61.5, key=KEY):
    stem = entry_stem("probe", key)
    store.ship_measures({stem: {"config": key, "result": result, "backbone": "a RotNet"}}, {"code": "test"})
    return stem


def test_a_shipped_measure_is_found_under_its_exact_key_only(models, cache, monkeypatch):
    _ship()
    def never():
        raise AssertionError("computed although shipped")
    assert cached_json("probe", KEY, never) == 61.5
    assert cached_json("probe", {**KEY, "seed": 1}, lambda: 12.0) == 12.0           # another key: computed
    assert cached_json("rotacc", KEY, lambda: 13.0) == 13.0                         # not a measure that is shipped
    monkeypatch.setenv("ROTLIB_SHIPPED_MEASURES", "0")
    assert cached_json("probe", {**KEY, "block": "conv3"}, lambda: 14.0) == 14.0
    assert cached_json("probe", KEY, lambda: 15.0) == 15.0                          # the recheck's switch


def test_shipping_merges_and_a_changed_file_is_refused(models):
    first = _ship(61.5)
    second = _ship(40.0, {**KEY, "block": "conv4"})
    assert {first, second} == set(store.read_measures())
    entries = models / "measures" / "entries.json"
    entries.write_text(entries.read_text().replace("61.5", "99.5"))
    with pytest.raises(store.ShippedModelError, match="does not match the sha256.*make measures"):
        store.read_measures()
    (models / "measures" / "manifest.json").unlink()
    with pytest.raises(store.ShippedModelError, match="no manifest"):
        store.read_measures()


SHIPPED = store.read_measures()


def test_measures_are_shipped_for_the_shipped_networks():
    assert len(SHIPPED) >= 100, "run `make measures`"
    nets = S.backbones(get_profile("quick"))
    for stem, entry in SHIPPED.items():
        assert entry_stem(stem.rsplit("-", 1)[0], entry["config"]) == stem
        if "backbone" in entry["config"]:
            assert nets[entry["config"]["backbone"]][0] == entry["backbone"], stem
    assert {e["config"]["precision"] for e in SHIPPED.values()} == {"bf16", "fp32"}


def test_a_sample_of_every_kind_computes_again_within_the_spread_between_cpu_kinds(tmp_path, monkeypatch):
    """At least one seed of every kind of measure, computed now in a throw-away cache: the same key, and a value
    within 1.5x the largest move of one seed's value between CPU kinds seen in results/evidence/ (identical on the
    CPU kind that made them)."""
    monkeypatch.setenv("ROTLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ROTLIB_SHIPPED_MEASURES", "0")
    committed = results.load("quick")
    allowed = 1.5 * evidence.largest_seed_shift(committed, evidence.load_runs(evidence.committed_evidence_dir("quick")))
    rows = S.recheck_measures(get_profile("quick"))
    assert len(rows) >= 10
    print(json.dumps(rows, indent=1))
    assert all(r["same_key"] for r in rows), [r["stem"] for r in rows if not r["same_key"]]
    moved = [(r["stem"], r["shipped"], r["fresh"]) for r in rows if abs(r["fresh"] - r["shipped"]) > allowed]
    assert not moved, f"moved by more than {allowed:.2f} points: {moved}"
