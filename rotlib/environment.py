"""Can a notebook run here? Each notebook's first code cell asks :func:`check` before anything else.

A notebook opened outside the kit (uploaded to a hosted Jupyter, or with rotlib installed from a wheel and no
checkout) would otherwise fail deep in its imports or its first data load. The cell itself first checks that
rotlib can be imported at all (plain Python, before any import of rotlib); :func:`check` then looks for the
shipped data and models the quick profile reads, and says in one sentence what to do when they are missing.
"""
from __future__ import annotations

from .profiles import get_profile
from .settings import current

FIX = ("open this notebook from the kit's checkout (git clone it, run `make notebooks` or `pip install -e .` there, "
       "then open notebooks/ in Jupyter), or set ROTLIB_HOME=/path/to/the/checkout and restart the kernel")


class SetupError(RuntimeError):
    """The notebook cannot run here: what is missing and what to do."""


def missing(settings=None) -> list[str]:
    """What the notebooks need and this environment lacks (empty when all is found): the shipped images and models
    when the profile reads the shipped subset (other datasets' loaders say themselves what they miss)."""
    s = settings or current()
    if get_profile(s.profile, s.dataset).dataset != "cifar10-5k":
        return []
    needs = {"the shipped CIFAR-10 images": s.data / "cifar10-5k" / "train.npz", "the shipped models": s.models}
    return [f"{what} ({path})" for what, path in needs.items() if not path.exists()]


def check(settings=None) -> None:
    """Raise :class:`SetupError` naming what is missing and what to do; silent when everything is found."""
    gaps = missing(settings)
    if gaps:
        raise SetupError(f"rotlib is installed but {' and '.join(gaps)} are not here: {FIX}.")
