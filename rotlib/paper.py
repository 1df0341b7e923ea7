"""The paper's quantities, each measured once over the profile's seeds and recorded.

Every number the notebooks and the README report comes from one function
here: it asks :mod:`rotlib.experiments` for the cached models and probes,
one per seed in ``profile.seeds`` (a RotNet seed pairs with the same
classifier seed), and stores mean, spread and n with :func:`rotlib.results.record`.
The same quantity asked for by two notebooks is the same cached computation:
Table 1's conv2, Table 2's "4 rotations" and Table 3's "RotNet + non-linear"
are one probe per seed.

The paper's numbers (CIFAR-10, 4-block NIN, Tables 1-3) are in ``PAPER``.
"""
from __future__ import annotations

from . import experiments as E
from . import results as R
from .profiles import Profile
from .rotations import canonical_rotation_set

PAPER = {
    **{f"table1.nonlinear.rotnet.conv{b}": v for b, v in zip(range(1, 5), (85.07, 89.06, 86.21, 61.73))},
    "table2.4": 89.06, "table2.8": 88.51, "table2.2-0/180": 87.46, "table2.2-90/270": 85.52,
    "table3.supervised": 92.80, "table3.random_conv": 72.50, "table3.rotnet_nonlinear": 89.06,
    "table3.rotnet_conv": 91.16, "fig5.rotnet.all": 91.16, "fig5.supervised.all": 92.80,
}


def _label(per_class: int | None) -> str:
    return "all" if per_class is None else str(per_class)


def _record(name: str, values, profile: Profile, notebook: str, paper: bool = True) -> R.Entry:
    return R.record(name, values, profile, notebook, PAPER.get(name) if paper else None)


def all_labels_are_the_papers(profile: Profile) -> bool:
    """Whether "all labels" is the paper's: CIFAR-10's 5,000 per class (50,000 images), where the end of Fig. 5(b) (and
    Table 3) lies; ``cifar10-5k``'s all is about 500 per class, where the paper's figure prints no number."""
    return profile.dataset == "cifar10" and len(E.labelled_subset(profile, None)) == 50_000


def rotnets(profile: Profile, rotations: str = "4", mode: str = "all", progress: bool = True,
            ablation: bool = False) -> list:
    """One RotNet per seed of the profile (shipped in models/, or cached, or trained).

    ``ablation=True``: the ablations' budget and seeds (``profile.ablation``), under which Table 2's rotation
    sets, the one-random-rotation variant and their own 4-rotation reference are all trained alike.
    """
    # the main models: epochs=None, the profile's own budget (for a folder: its fine-tuning epochs)
    epochs, seeds = (profile.ablation["epochs"], profile.ablation["seeds"]) if ablation else (None, profile.seeds)
    return [E.train_rotnet(profile, rotations, mode, seed=s, epochs=epochs, progress=progress) for s in seeds]


def random_nets(profile: Profile) -> list:
    return [E.random_init(profile, seed=s) for s in profile.seeds]


def supervised_nets(profile: Profile, per_class: int | None = None, progress: bool = True) -> list:
    return [E.train_supervised(profile, per_class, seed=s, progress=progress) for s in profile.seeds]


NETWORKS = {"rotnet": rotnets, "random": random_nets, "supervised": supervised_nets}  # kind -> one net per seed


# ---------------------------------------------------------------- the models the notebooks load
LABEL_BUDGETS = (20, 100, None)                      # notebook 7's labels per class (None: all; Table 3's baseline)
TABLE2_SETS = ("4", "8", "2-0/180", "2-90/270")      # notebook 6's rotation sets (Table 2)
BATCHING = {"all": "all4", "random": "random1", "random-images": "random1images"}  # notebook 2's batching variants
                                                     # (profile.batching picks them): mode -> its name


def models(profile: Profile) -> list[tuple[str, E.ModelSpec]]:
    """Every trained model the notebooks load, once each, as (label, spec): the main RotNet per seed, the
    supervised baseline per label budget and seed, and at the ablations' budget every Table 2 rotation set and the
    one-random-rotation variants of ``profile.batching``. ``make models`` trains and ships exactly these
    (:func:`rotlib.shipped.plan`); under ``make test`` a notebook that asks for any other model fails
    (``ROTLIB_SHIPPED_ONLY``)."""
    out = [(f"RotNet, 4 rotations, {profile.rotnet_epochs} epochs, seed {s}", E.rotnet_spec(profile, seed=s))
           for s in profile.seeds]
    out += [(f"supervised from scratch, {_label(k)} labels/class, seed {s}", E.supervised_spec(profile, k, seed=s))
            for k in LABEL_BUDGETS for s in profile.seeds]
    a = profile.ablation
    ablations = [(r, "all") for r in TABLE2_SETS] + [("4", mode) for mode in profile.batching if mode != "all"]
    out += [(f"ablation: RotNet, {canonical_rotation_set(r)} rotations, {mode}, {a['epochs']} epochs, seed {s}",
             E.rotnet_spec(profile, r, mode, seed=s, epochs=a["epochs"])) for s in a["seeds"] for r, mode in ablations]
    unique = {}                              # an ablation budget equal to the main one shares its models
    for label, spec in out:
        unique.setdefault(spec.stem, (label, spec))
    return list(unique.values())


def gap(name: str, a: R.Entry, b: R.Entry, profile: Profile, notebook: str) -> R.Entry:
    """``a - b`` seed by seed (paired: the same seed's models), recorded as its own quantity."""
    return _record(name, [x - y for x, y in zip(a["values"], b["values"])], profile, notebook)


# ---------------------------------------------------------------- notebook 2
def rotation_accuracy(profile: Profile, notebook: str = "02", rotations: str = "4", mode: str = "all",
                      ablation: bool = False) -> R.Entry:
    """Pretext accuracy on the test split, every test image in every rotation of the set.

    The main RotNets: ``rotation_accuracy``; at the ablations' budget: ``ablation.rotation_accuracy.<set>.<mode>``.
    """
    if (rotations, mode, ablation) != ("4", "all", False) and not ablation:
        raise ValueError("the rotation-set and one-random-rotation variants are trained at the ablations' budget: "
                         "pass ablation=True")
    name = f"ablation.rotation_accuracy.{canonical_rotation_set(rotations)}.{mode}" if ablation \
        else "rotation_accuracy"
    values = [E.rotation_accuracy(m, profile, rotations) for m in rotnets(profile, rotations, mode, ablation=ablation)]
    return _record(name, values, profile, notebook)


def pretext_epochs(profile: Profile, epochs=None, notebook: str = "02") -> dict[int, dict[str, R.Entry]]:
    """Fig. 5(a): rotation accuracy and the conv2 non-linear probe (all labels) of the first seed's main RotNet after
    each of ``epochs`` (default: every kept snapshot and the last epoch; only the last where ``make models`` kept
    none, as for a folder or the paper profile). One seed, so each entry's tolerance is taken from the spread of the
    same quantity over the main RotNets' seeds at the last epoch."""
    last = E.rotnet_spec(profile).config["train"]["epochs"]
    epochs = epochs or (*E.kept_snapshots(profile), last)
    nets = rotnets(profile)
    spread = {"rotation_accuracy": R.summarize([E.rotation_accuracy(m, profile) for m in nets]),
              "probe": R.summarize([E.probe(m, profile, "conv2", "nonlinear", seed=s)
                                    for s, m in zip(profile.seeds, nets)])}
    out = {}
    for epoch in epochs:
        net = E.rotnet_snapshot(profile, epoch)
        values = {"rotation_accuracy": E.rotation_accuracy(net, profile),
                  "probe": E.probe(net, profile, "conv2", "nonlinear", seed=profile.seeds[0])}
        out[epoch] = {k: R.record(f"fig5a.{k}.epoch{epoch:02d}", [v], profile, notebook,
                                  tol=R.tolerance({"std": spread[k]["std"], "n": 1}))
                      for k, v in values.items()}
    return out


def batching(profile: Profile, per_class: int | None = None, notebook: str = "02") -> dict[str, R.Entry]:
    """All 4 rotations of an image in one batch vs one random rotation per image (Sec. 2.2), conv2 non-linear, each
    variant of ``profile.batching`` at the ablations' budget: ``out[BATCHING[mode]]``, and all-4 minus each
    one-random variant seed by seed, ``out["gap"]`` (equal compute, "random") and ``out["gap.images"]`` (the same
    images per batch, "random-images")."""
    out = {}
    for mode in profile.batching:
        label = BATCHING[mode]
        values = [E.probe(m, profile, "conv2", "nonlinear", per_class, seed=s)
                  for s, m in zip(profile.ablation["seeds"], rotnets(profile, mode=mode, ablation=True))]
        out[label] = _record(f"batching.{label}.{_label(per_class)}", values, profile, notebook)
    for mode, key, name in (("random", "gap", "gap.batching"), ("random-images", "gap.images", "gap.batching.images")):
        if mode in profile.batching:
            out[key] = gap(f"{name}.{_label(per_class)}", out["all4"], out[BATCHING[mode]], profile, notebook)
    return out


# ---------------------------------------------------------------- notebook 3
def table1(profile: Profile, classifier: str = "nonlinear", per_class: int | None = None,
           kinds=("rotnet", "random"), notebook: str = "03") -> dict[str, R.Entry]:
    """A classifier on each frozen block of the RotNet (and of random-init networks), Table 1.

    Names: ``table1.<classifier>.<kind>.<block>`` with all labels, ``labels<k>.<classifier>.<kind>.<block>``
    with k labels per class; ``gap...`` for RotNet minus random init, seed by seed.
    """
    prefix = "table1" if per_class is None else f"labels{per_class}"
    out = {}
    for kind in kinds:
        per_seed = [E.probe_blocks(net, profile, classifier=classifier, per_class=per_class, seed=s)
                    for s, net in zip(profile.seeds, NETWORKS[kind](profile))]
        for block in per_seed[0]:
            out[f"{kind}.{block}"] = _record(f"{prefix}.{classifier}.{kind}.{block}", [r[block] for r in per_seed],
                                             profile, notebook)
    if "rotnet" in kinds and "random" in kinds:
        for block in E.block_names(profile):
            out[f"gap.{block}"] = gap(f"gap.{prefix}.{classifier}.{block}", out[f"rotnet.{block}"],
                                      out[f"random.{block}"], profile, notebook)
    return out


def pixels(profile: Profile, classifier: str = "nonlinear", per_class: int | None = None,
           notebook: str = "03") -> R.Entry:
    """The same classifier on raw normalised pixels: what needs no representation at all."""
    name = f"pixels.{classifier}" + ("" if per_class is None else f".{per_class}")
    values = [E.pixel_probe(profile, classifier, per_class, seed=s) for s in profile.seeds]
    return _record(name, values, profile, notebook)


def table3(profile: Profile, notebook: str = "03") -> dict[str, R.Entry]:
    """Table 3: supervised NIN end to end; random init + conv; RotNet + non-linear; RotNet + conv (conv2 features)."""
    seeds, rot = profile.seeds, rotnets(profile)
    out = {
        "supervised": [E.supervised_accuracy(m, profile) for m in supervised_nets(profile)],
        "random_conv": [E.probe(m, profile, "conv2", "conv", seed=s) for s, m in zip(seeds, random_nets(profile))],
        "rotnet_nonlinear": [E.probe(m, profile, "conv2", "nonlinear", seed=s) for s, m in zip(seeds, rot)],
        "rotnet_conv": [E.probe(m, profile, "conv2", "conv", seed=s) for s, m in zip(seeds, rot)],
    }
    out = {k: _record(f"table3.{k}", v, profile, notebook) for k, v in out.items()}
    out["gap_conv"] = gap("gap.table3.conv", out["rotnet_conv"], out["random_conv"], profile, notebook)
    out["gap_supervised"] = gap("gap.table3.supervised_minus_rotnet_conv", out["supervised"], out["rotnet_conv"],
                                profile, notebook)
    return out


# ---------------------------------------------------------------- notebook 6
def table2(profile: Profile, sets=TABLE2_SETS, notebook: str = "06") -> dict[str, R.Entry]:
    """Table 2: a RotNet per rotation set and seed, the non-linear classifier on conv2 (all labels), every set
    (4 included) at the ablations' budget."""
    out = {}
    for name in map(canonical_rotation_set, sets):
        values = [E.probe(m, profile, "conv2", "nonlinear", seed=s)
                  for s, m in zip(profile.ablation["seeds"], rotnets(profile, name, ablation=True))]
        out[name] = _record(f"table2.{name}", values, profile, notebook)
        out[f"rotation_accuracy.{name}"] = rotation_accuracy(profile, notebook, name, ablation=True)
    return out


# ---------------------------------------------------------------- notebook 7
def fig5(profile: Profile, per_class=LABEL_BUDGETS, notebook: str = "07") -> dict:
    """Fig. 5: RotNet conv2 features + conv classifier vs the same network trained from scratch, per label budget.

    Returns ``{"rotnet": {k: Entry}, "supervised": {k: Entry}, "gap": {k: Entry}, "crossover": (lo, hi)}``;
    the crossover range spans the per-seed crossovers (in labelled images), None where a seed's curves never cross.
    """
    out = {"rotnet": {}, "supervised": {}, "gap": {}}
    for k in per_class:
        rot = [E.probe(m, profile, "conv2", "conv", per_class=k, seed=s)
               for s, m in zip(profile.seeds, rotnets(profile))]
        sup = [E.supervised_accuracy(m, profile) for m in supervised_nets(profile, k)]
        label = _label(k)
        paper = k is not None or all_labels_are_the_papers(profile)    # the paper's end point: only at its budget
        out["rotnet"][k] = _record(f"fig5.rotnet.{label}", rot, profile, notebook, paper)
        out["supervised"][k] = _record(f"fig5.supervised.{label}", sup, profile, notebook, paper)
        out["gap"][k] = gap(f"gap.fig5.{label}", out["rotnet"][k], out["supervised"][k], profile, notebook)
    labels = [len(E.labelled_subset(profile, k)) for k in per_class]
    crossings = [E.crossover(labels, [out["rotnet"][k]["values"][i] for k in per_class],
                             [out["supervised"][k]["values"][i] for k in per_class]) for i in range(len(profile.seeds))]
    out["labels"] = labels
    out["crossover"] = crossings
    return out


def rotation_readout(profile: Profile, kinds=("rotnet", "random"), notebook: str = "03") -> dict[str, R.Entry]:
    """How well a linear classifier reads the rotation from each frozen block (the paper's explanation of
    Table 1: the last blocks specialise in the pretext task). Names ``rotprobe.linear.<kind>.<block>``."""
    out = {}
    for kind in kinds:
        nets = NETWORKS[kind](profile)
        for block in E.block_names(profile):
            values = [E.rotation_probe(m, profile, block, seed=s) for s, m in zip(profile.seeds, nets)]
            out[f"{kind}.{block}"] = _record(f"rotprobe.linear.{kind}.{block}", values, profile, notebook)
    return out


def fmt(entry: R.Entry, digits: int = 2) -> str:
    """``mean ± std`` as every table in the series prints it."""
    return f"{entry['value']:.{digits}f} ± {entry['std']:.{digits}f}"


def block_table(entries: dict, columns: dict[str, str], gap: bool = True, paper: bool = True):
    """A per-block pandas table of a :func:`table1` result: one column per ``{label: kind}``, then
    RotNet minus random init (seed by seed) and the paper's number."""
    import pandas as pd
    blocks = list(dict.fromkeys(k.split(".", 1)[1] for k in entries if not k.startswith("gap.")))
    table = pd.DataFrame({label: {b: fmt(entries[f"{kind}.{b}"]) for b in blocks} for label, kind in columns.items()})
    if gap and any(k.startswith("gap.") for k in entries):
        table["RotNet − random (points)"] = [fmt(entries[f"gap.{b}"]) for b in blocks]
    if paper:
        table["paper, RotNet (CIFAR-10)"] = ["—" if entries[f"rotnet.{b}"].get("paper") is None
                                             else f"{entries[f'rotnet.{b}']['paper']:.2f}" for b in blocks]
    return table


def table(entries, paper: bool = True):
    """A pandas table of entries for display: quantity, ``mean ± std``, n and the paper's number."""
    import pandas as pd
    rows = {}
    for e in entries:
        row = {"ours (mean ± std)": fmt(e), "n": e["n"]}
        if paper:
            row["paper"] = "—" if e.get("paper") is None else f"{e['paper']:.2f}"
        rows[e["name"]] = row
    return pd.DataFrame(rows).T
