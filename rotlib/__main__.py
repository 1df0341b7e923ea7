"""Command line: ``python -m rotlib {train,evaluate,reproduce,orient} ...`` (same code as the notebooks)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import distributed as dist
from . import experiments as E
from . import orient as O
from .memory import keep_freed_memory
from .profiles import PROFILES, get_profile
from .reproduce import reproduce
from .rotations import ROTATION_SETS
from .settings import current


def _at_least(minimum: int, hint: str = ""):
    """An argparse type: a whole number >= ``minimum``; anything else is refused with the valid range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number, at least {minimum}; got {text!r}{hint}")
        return value
    return parse


def _profile(args):
    changes = {k: v for k, v in {"width": args.width, "num_blocks": args.blocks, "n_train": args.n_train}.items()
               if v is not None}
    if args.from_scratch:
        changes["folder_start"] = "scratch"
    profile = get_profile(args.profile, args.dataset, args.device, **changes).with_settings(args.set or [])
    if args.epochs is not None:          # a folder fine-tuned from the shipped RotNet counts fine-tuning epochs
        fine_tune = profile.dataset.startswith("folder:") and profile.folder_start == "shipped"
        profile = profile.replace(**{"finetune_epochs" if fine_tune else "rotnet_epochs": args.epochs})
    return profile


def _write(result: dict, path: str | None, default: str) -> Path:
    out = Path(path or default)
    if not dist.is_main():                   # under torchrun rank 0 writes
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return out


def cmd_train(args) -> dict:
    profile = _profile(args)
    t0 = time.time()
    spec = E.rotnet_spec(profile, args.rotations, seed=args.seed).resolved()   # what get() loads or trains
    model = spec.get()
    train_s = time.time() - t0
    acc = E.rotation_accuracy(model, profile, args.rotations)
    result = {"profile": profile.as_dict(), "rotations": args.rotations, "seed": args.seed,
              "rotation_accuracy": acc, "seconds": round(train_s, 1), "cache_key": spec.stem,
              "n_test": len(E.load_split(profile, "test")), "world_size": dist.world_size()}
    print(f"RotNet [{profile.name}, {profile.dataset}, rotations {args.rotations}]: rotation accuracy "
          f"{acc:.2f}% on {result['n_test']} test images (x{len(ROTATION_SETS[E.canonical_rotation_set(args.rotations)])} "
          f"rotations); train/load time {train_s:.0f} s")
    _write(result, args.out, f"results/train-{profile.name}-{profile.dataset.split(':')[0]}.json")
    return result


def cmd_evaluate(args) -> dict:
    profile = _profile(args)
    E.labelled_subset(profile, args.per_class)   # a per-class count the data cannot honour fails before training
    model = E.train_rotnet(profile, args.rotations, seed=args.seed)
    rnd = E.random_init(profile, seed=args.seed)
    rot_acc = E.probe_blocks(model, profile, classifier=args.classifier, per_class=args.per_class)
    rnd_acc = E.probe_blocks(rnd, profile, classifier=args.classifier, per_class=args.per_class)
    print(f"{args.classifier} classifier on frozen features, test accuracy (%), "
          f"{'all' if args.per_class is None else args.per_class} labels per class:")
    print(f"{'block':8s}{'RotNet':>10s}{'random init':>14s}{'gap':>8s}")
    for b in model.block_names:
        print(f"{b:8s}{rot_acc[b]:10.2f}{rnd_acc[b]:14.2f}{rot_acc[b] - rnd_acc[b]:8.2f}")
    result = {"profile": profile.as_dict(), "classifier": args.classifier, "per_class": args.per_class,
              "rotnet": rot_acc, "random_init": rnd_acc}
    _write(result, args.out, f"results/evaluate-{profile.name}-{profile.dataset.split(':')[0]}.json")
    return result


def cmd_reproduce(args) -> dict:
    return reproduce(_profile(args), out_dir=Path(args.out or "results"), seed=args.seed)


def cmd_orient(args) -> dict:
    """Which way is up? Predict each image's turn with a RotNet; with --apply, write corrected copies (notebook 8)."""
    if not 0.0 <= args.min_confidence <= 1.0:
        raise ValueError(f"--min-confidence must be between 0 and 1, got {args.min_confidence}")
    if args.max_pixels < 0:
        raise ValueError(f"--max-pixels must be 0 (no limit) or more, got {args.max_pixels}")
    if args.apply is not None:
        O.check_output(args.path, args.apply)          # refuse writing beside the originals before loading anything
    device = args.device or current().device or "auto"
    if args.model:
        orienter = O.Orienter.from_file(args.model, tta=args.tta, device=device)
    elif args.profile or args.dataset:
        orienter = O.Orienter.from_profile(get_profile(args.profile, args.dataset, args.device), tta=args.tta)
    else:       # no checkout needed: the model installed with the package (the quick profile's shipped RotNet)
        orienter = O.Orienter.packaged(tta=args.tta, device=device)
    print(f"{orienter}; confidence threshold {args.min_confidence:.2f}"
          + (f"; corrected copies go to {args.apply}" if args.apply else "; nothing is written (no --apply)"))
    print(O.table_header())
    results = O.orient_paths(orienter, args.path, args.min_confidence, args.apply, args.overwrite, args.recursive,
                             on_result=lambda r: print(O.table_row(r, applying=args.apply is not None), flush=True),
                             max_pixels=args.max_pixels)
    print(O.summary_line(results))
    failed = [r for r in results if r.write_failed]
    if failed:        # a script that calls the tool must not believe the photos were fixed
        raise OSError(f"{len(failed)} corrected {'copy' if len(failed) == 1 else 'copies'} could not be written: "
                      f"{failed[0].message.removeprefix('not written: ')}")
    return {"results": [r.as_dict() for r in results]}


def _add_orient_parser(sub) -> None:
    p = sub.add_parser("orient", help="which way is up? fix the orientation of photos with a RotNet")
    p.set_defaults(fn=cmd_orient)
    p.add_argument("path", help="an image file or a folder of images (originals are never modified)")
    p.add_argument("--model", help="a RotNet saved by rotlib's cache (cache/rotnet-*.pt); default: the RotNet installed "
                                   "with the package (the quick profile's, seed 0); with --profile/--dataset that "
                                   "profile's (needs the checkout; trained first if not cached)")
    p.add_argument("--apply", metavar="OUT", help="write corrected copies of the rotated images to folder OUT")
    p.add_argument("--min-confidence", dest="min_confidence", type=float, default=O.DEFAULT_MIN_CONFIDENCE,
                   help=f"below this probability an image is reported unsure and left alone "
                        f"(default {O.DEFAULT_MIN_CONFIDENCE})")
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist in OUT")
    p.add_argument("--recursive", "-r", action="store_true", help="also look in sub-folders (mirrored in OUT)")
    p.add_argument("--tta", action="store_true", help="average the prediction over the 4 rotated copies (4x slower)")
    p.add_argument("--max-pixels", dest="max_pixels", type=int, default=O.MAX_PIXELS, metavar="N",
                   help=f"skip images whose header says more than N pixels, before decoding them (a guard against "
                        f"decompression bombs; default {O.MAX_PIXELS:,}, Pillow's; 0: no limit)")
    p.add_argument("--profile", choices=list(PROFILES), default=None, help="use this profile's RotNet instead of the packaged one")
    p.add_argument("--dataset", help="the dataset of the profile's RotNet, without --model (default: the profile's)")
    p.add_argument("--device", help="auto (default), cpu, cuda, ...")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, hlp in [("train", cmd_train, "train (or load from the cache) a RotNet and report its rotation accuracy"),
                          ("evaluate", cmd_evaluate, "frozen-feature accuracy per block, RotNet vs random init"),
                          ("reproduce", cmd_reproduce, "the paper's Tables 1-3 into results/ (JSON + markdown)")]:
        p = sub.add_parser(name, help=hlp)
        p.set_defaults(fn=fn)
        p.add_argument("--dataset", help="fashion-mnist, cifar10 or folder:PATH (default: the profile's)")
        p.add_argument("--profile", choices=list(PROFILES), default=None, help="quick (CPU) or paper (GPU)")
        p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
        p.add_argument("--rotations", default="4", help=f"rotation set: {', '.join(ROTATION_SETS)}")
        p.add_argument("--epochs", type=_at_least(1), help="RotNet epochs (default: the profile's; for folder:PATH "
                                                           "the epochs of fine-tuning the shipped RotNet, default 8)")
        p.add_argument("--from-scratch", dest="from_scratch", action="store_true",
                       help="folder:PATH: train the RotNet from a random init instead of fine-tuning the shipped one")
        p.add_argument("--width", type=_at_least(2, " (192 in the paper)"), help="NIN width (192 in the paper)")
        p.add_argument("--blocks", type=_at_least(3, " (the paper uses 3, 4 or 5)"),
                       help="number of NIN blocks (3, 4 or 5)")
        p.add_argument("--n-train", dest="n_train", type=_at_least(1),
                       help="use a random subset of this many training images")
        p.add_argument("--seed", type=_at_least(0), default=0)
        p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                       help="any other profile setting (rotlib.profiles.Profile), e.g. --set lr=0.05 --set "
                            "augment=false; repeatable")
        p.add_argument("--out", help="where to write the JSON (reproduce: a folder)")
        if name == "evaluate":
            p.add_argument("--classifier", choices=["linear", "nonlinear", "conv"], default="nonlinear")
            p.add_argument("--per-class", dest="per_class", type=_at_least(1),
                           help="labelled images per class (default: all)")
    _add_orient_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command != "orient":   # under torchrun: one process group for the whole command, by --device
            dist.init_from_env(args.device or get_profile(args.profile).device)
        args.fn(args)
    except (OSError, ValueError, RuntimeError) as err:     # OSError: a missing file, a full disk, a read-only folder
        # under torchrun this rank exits; torchrun then stops the others (they may be waiting for it)
        print(f"error{f' (rank {dist.rank()})' if dist.is_distributed() else ''}: {err}", file=sys.stderr)
        return 2
    finally:
        dist.shutdown()
    return 0


def cli() -> int:
    """``python -m rotlib`` and the ``rotlib`` command: a process of its own, so it keeps freed memory for reuse
    (:mod:`rotlib.memory`: the same numbers, faster large steps on CPU). ``main`` alone leaves the process as it is."""
    keep_freed_memory()
    return main()


if __name__ == "__main__":
    sys.exit(cli())
