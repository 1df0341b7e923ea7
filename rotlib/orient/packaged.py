"""The RotNet that travels inside the package, so ``python -m rotlib orient`` needs no checkout.

``pip install <checkout>`` puts ``rotlib/orient/model/upright.pt`` (the quick profile's shipped 4-rotation RotNet,
seed 0: the model notebook 8 evaluates, ~0.7 MB) and its manifest ``upright.json`` (which shipped model it is
and its sha256) into site-packages; its normalisation and input size follow from the dataset named in the
weights file (:data:`rotlib.orient.orienter._DATASET_STATS`), so neither the training data nor ``models/`` is
read. The copy is byte-identical to ``models/<of>.pt`` (a test checks it); after ``make models`` re-makes that
model, ``python -m rotlib.orient.packaged`` refreshes the copy.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import experiments as E
from ..files import write_text_atomic
from ..profiles import get_profile
from ..store import sha256

FOLDER = Path(__file__).resolve().parent / "model"
WEIGHTS, MANIFEST = FOLDER / "upright.pt", FOLDER / "upright.json"
PROFILE, SEED = "quick", 0          # whose RotNet travels: the one notebook 8 measures


class PackagedModelError(RuntimeError):
    """The packaged model is missing or does not match its manifest."""


def manifest() -> dict:
    try:
        return json.loads(MANIFEST.read_text())
    except (OSError, ValueError) as err:
        raise PackagedModelError(f"the packaged orientation model's manifest {MANIFEST} is missing or damaged ({err}); "
                                 "reinstall rotlib (pip install --force-reinstall <checkout>) or pass --model PATH"
                                 ) from None


def weights() -> Path:
    """The packaged weights, checked against the manifest's sha256."""
    expected = manifest()["sha256"]
    if not WEIGHTS.is_file() or sha256(WEIGHTS) != expected:
        raise PackagedModelError(f"{WEIGHTS} is missing or does not match the sha256 in {MANIFEST.name}; reinstall "
                                 "rotlib (pip install --force-reinstall <checkout>) or pass --model PATH")
    return WEIGHTS


def source() -> Path:
    """The shipped model the packaged one copies (in the checkout's ``models/``)."""
    return E.rotnet_spec(get_profile(PROFILE, dataset="cifar10-5k", device="cpu"), seed=SEED).path


def refresh() -> Path:
    """Copy the shipped model into the package and write its manifest (run in a checkout after ``make models``)."""
    src = source()
    if not src.is_file():
        raise FileNotFoundError(f"{src} is not shipped; run `make models` first")
    FOLDER.mkdir(exist_ok=True)
    tmp = WEIGHTS.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(WEIGHTS)
    write_text_atomic(MANIFEST, json.dumps({"of": src.stem, "profile": PROFILE, "seed": SEED,
                                            "sha256": sha256(WEIGHTS)}, indent=1) + "\n")
    return WEIGHTS


if __name__ == "__main__":
    print(f"packaged {refresh()} from {source()}")
