"""The paper's CIFAR-10 tables in one command: ``python -m rotlib reproduce --profile paper``.

Trains (or loads from the cache) the RotNets and baselines and evaluates
Table 1 (non-linear classifier per block), Table 2 (rotation sets) and
Table 3 (conv classifier, random init, supervised), then writes
``results/reproduce-<profile>.json`` and ``results/reproduce-<profile>.md`` with the
paper's numbers beside ours. Every model is checkpointed each epoch and
cached, so an interrupted run continues where it stopped when started again.
Works on one GPU (bf16 autocast, channels_last, the data moved to the GPU once) and on several
with ``torchrun --nproc_per_node=N -m rotlib reproduce --profile paper``.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from . import distributed as dist
from . import experiments as E
from . import paper as P
from .profiles import Profile
from .devices import pick_device

TABLE3_ROWS = {"supervised NIN": "supervised", "random init + conv": "random_conv",
               "RotNet + non-linear": "rotnet_nonlinear", "RotNet + conv": "rotnet_conv"}
# the paper's numbers, by table and row as printed here, from the one copy in rotlib.paper
PAPER = {
    "table1": {f"conv{b}": P.PAPER[f"table1.nonlinear.rotnet.conv{b}"] for b in range(1, 5)},
    "table2": {s: P.PAPER[f"table2.{s}"] for s in ("4", "8", "2-0/180", "2-90/270")},
    "table3": {row: P.PAPER[f"table3.{key}"] for row, key in TABLE3_ROWS.items()},
}


def _fmt(x):
    return "pending" if x is None else f"{x:.2f}"


def markdown(results: dict) -> str:
    """The three tables, paper beside ours."""
    p = results["profile"]
    lines = [f"# RotNet reproduction: profile `{p['name']}`, dataset `{p['dataset']}`", "",
             f"Device: {results['device']}; wall time {results['seconds'] / 60:.1f} min; torch {results['torch']}.", ""]
    for key, title, label in [("table1", "Table 1: non-linear classifier on each block", "block"),
                              ("table2", "Table 2: rotation sets (non-linear classifier on conv2)", "rotations"),
                              ("table3", "Table 3: CIFAR-10 classification", "method")]:
        lines += [f"## {title}", "", f"| {label} | paper (CIFAR-10) | ours |", "|---|---:|---:|"]
        ours = results[key]
        for name in dict.fromkeys(list(PAPER[key]) + list(ours)):
            lines.append(f"| {name} | {_fmt(PAPER[key].get(name))} | {_fmt(ours.get(name))} |")
        lines.append("")
    return "\n".join(lines)


def reproduce(profile: Profile, out_dir: Path = Path("results"), seed: int = 0, progress: bool = True) -> dict:
    """Run (or resume) the whole reproduction and write the results JSON and markdown.

    The numbers come from :mod:`rotlib.paper` (the same functions as the notebooks) for the RotNet of
    ``seed``, and are also recorded in ``results/<profile>.json``, which feeds the README's table.
    """
    dist.init_from_env(profile.device)
    t0 = time.time()
    profile = profile.replace(seeds=(seed,))
    rot_acc = P.rotation_accuracy(profile, notebook="reproduce")
    t1 = P.table1(profile, kinds=("rotnet", "random"), notebook="reproduce")
    table1 = {b: t1[f"rotnet.{b}"]["value"] for b in E.block_names(profile)}
    table2 = {name: e["value"] for name, e in P.table2(profile, notebook="reproduce").items()
              if not name.startswith("rotation_accuracy")}
    t3 = P.table3(profile, notebook="reproduce")
    table3 = {row: t3[key]["value"] for row, key in TABLE3_ROWS.items()}
    device = pick_device(dist.local_device(profile.device))
    results = {"profile": profile.as_dict(), "seed": seed, "table1": table1, "table2": table2, "table3": table3,
               "rotation_accuracy": rot_acc["value"],
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} ({platform.machine()})",
               "world_size": dist.world_size(), "torch": torch.__version__, "seconds": round(time.time() - t0, 1),
               "paper": PAPER}
    if dist.is_main():
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"reproduce-{profile.name}"
        (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2))
        (out_dir / f"{stem}.md").write_text(markdown(results))
        print(markdown(results))
        print(f"wrote {out_dir / (stem + '.json')} and {out_dir / (stem + '.md')}")
    dist.barrier()
    return results
