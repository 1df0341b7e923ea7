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
    other = entry_stem("attention", KEY)                                # not a kind of measure that ships: ignored
    store.ship_measures({**store.read_measures(), other: {"config": KEY, "result": 99.0, "backbone": "a RotNet"}},
                        {"code": "test"})
    assert cached_json("attention", KEY, lambda: 13.0) == 13.0
    assert cached_json("probe", KEY, never) == 61.5
    monkeypatch.setenv("ROTLIB_SHIPPED_MEASURES", "0")
    assert cached_json("probe", {**KEY, "block": "conv3"}, lambda: 14.0) == 14.0
    assert cached_json("probe", KEY, lambda: 15.0) == 15.0                          # the recheck's switch


def test_shipping_replaces_its_precision_and_a_changed_file_is_refused(models):
    _ship(40.0, {**KEY, "block": "conv4"})
    other = _ship(55.0, {**KEY, "precision": "fp32"})            # made on a CPU kind without native bf16
    first = _ship(61.5)
    assert set(store.read_measures()) == {first, other}          # bf16 replaced (nothing stale), fp32 kept
    assert set(json.loads((models / "measures" / "manifest.json").read_text())["made_by"]) == {"bf16", "fp32"}
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
        assert entry_stem(S.measurement(stem), entry["config"]) == stem
        net = entry["config"].get("backbone", entry["config"].get("model"))
        assert entry["backbone"] == ("pixels" if net is None else nets[net][0]), stem
    made_by = json.loads((store.measures_dir() / "manifest.json").read_text())["made_by"]
    assert {e["config"]["precision"] for e in SHIPPED.values()} == set(made_by) and "bf16" in made_by


def test_a_sample_of_every_kind_computes_again_within_the_spread_between_cpu_kinds(tmp_path, monkeypatch):
    """At least one seed of every kind of measure, computed now in a throw-away cache: the same key, and a value
    within 1.5x the largest move of one seed's accuracy between CPU kinds seen in results/evidence/; identical on the
    CPU kind (and torch) that made them."""
    monkeypatch.setenv("ROTLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ROTLIB_SHIPPED_MEASURES", "0")
    committed = results.load("quick")
    allowed = 1.5 * evidence.largest_seed_shift(committed, evidence.load_runs(evidence.committed_evidence_dir("quick")))
    profile = get_profile("quick")
    precision = S.evaluation_precision(profile)
    made_by = json.loads((store.measures_dir() / "manifest.json").read_text())["made_by"]
    assert set(made_by) == {"bf16", "fp32"}, "the measures of both evaluation precisions ship (make measures on a " \
        "CPU with native bf16 and on one without)"
    rows = S.recheck_measures(profile)
    assert {r["precision"] for r in rows} == {precision}          # what this CPU kind's notebooks read
    here = store.machine()
    same_kind = {p: all(m["machine"].get(k) == here[k] for k in ("cpu", "amx_bf16", "avx512_bf16", "torch"))
                 for p, m in made_by.items()}
    assert len(rows) >= 10
    print(json.dumps(rows, indent=1))
    assert all(r["same_key"] for r in rows), [r["stem"] for r in rows if not r["same_key"]]
    moved = [(r["stem"], r["shipped"], r["fresh"], "same CPU kind" if same_kind[r["precision"]] else "another")
             for r in rows if abs(r["fresh"] - r["shipped"]) > (0.0 if same_kind[r["precision"]] else allowed)]
    assert not moved, f"moved (beyond {allowed:.2f} points between kinds, at all on the same kind): {moved}"
