"""The one place that reads rotlib's environment variables, and where its folders are.

Every ``ROTLIB_*`` variable is read here, at the moment it is needed (so a
notebook or a test that sets one sees it take effect); the rest of rotlib
takes explicit arguments or asks :func:`current`. The variables:

============== ========================================================== ==============================
variable       what it sets                                               default
============== ========================================================== ==============================
ROTLIB_PROFILE the profile :func:`rotlib.get_profile` returns             ``quick``
ROTLIB_DATASET the profile's dataset (``cifar10-5k``, ``folder:PATH`` ...) the profile's
ROTLIB_DEVICE  the profile's device (``cpu``, ``cuda``, ``auto``)         the profile's
ROTLIB_HOME    the project folder (``data/``, ``models/``, ``cache/``)    found, see :func:`project_root`
ROTLIB_DATA    where datasets are read and downloaded                     ``<home>/data``
ROTLIB_MODELS  the shipped models                                         ``<home>/models``
ROTLIB_CACHE   trained models and results computed here                   ``<home>/cache``
ROTLIB_RESULTS where notebooks record their numbers                       ``<home>/results/scratch``
ROTLIB_OFFLINE ``1``: never download a dataset                            ``0``
ROTLIB_PROGRESS ``0``: no progress bars                                   ``1``
ROTLIB_SHIPPED_ONLY ``1``: asking for a model not in ``models/`` is an error  ``0`` (it is trained)
                (``make test``: every model a notebook loads is shipped)
ROTLIB_SHIPPED_MEASURES ``0``: compute every probe instead of loading the    ``1``
                probes' results shipped in ``models/measures/`` (a recheck)
============== ========================================================== ==============================

``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` are torchrun's and are read by
:mod:`rotlib.distributed`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
VERSION = "0.1.0"                        # the package version (pyproject.toml says the same; a test checks)


def _is_project(folder: Path) -> bool:
    """A rotlib checkout: its shipped data and models, and the package's project file."""
    return (folder / "models").is_dir() and (folder / "data" / "cifar10-5k").is_dir() and \
        (folder / "pyproject.toml").is_file()


def project_root(environ=None) -> Path:
    """The project folder: ``$ROTLIB_HOME``; else the checkout the package is imported from (an editable
    install); else the first of the current folder and its parents that is a rotlib checkout (an installed
    package used from inside the checkout, e.g. from ``notebooks/``); else the current folder."""
    environ = os.environ if environ is None else environ
    if environ.get("ROTLIB_HOME"):
        return Path(environ["ROTLIB_HOME"]).expanduser().resolve()
    if _is_project(PACKAGE.parent):
        return PACKAGE.parent
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if _is_project(folder)), here)


@dataclass(frozen=True)
class Settings:
    """What the environment asks for; ``None`` where it asks nothing (the caller's own default applies)."""
    profile: str | None
    dataset: str | None
    device: str | None
    home: Path
    data: Path
    models: Path
    cache: Path
    results: Path | None      # None: record under <home>/results/scratch, read from <home>/results
    offline: bool
    progress: bool
    shipped_only: bool = False   # True: a model not shipped is an error, never trained (make test's notebooks)
    shipped_measures: bool = True  # False: the probes' shipped results are not looked up (computed, or cached)


def current(environ=None) -> Settings:
    """The settings the environment gives now."""
    env = os.environ if environ is None else environ
    home = project_root(env)

    def folder(name: str, default: Path) -> Path:
        return Path(env[name]).expanduser() if env.get(name) else default

    return Settings(profile=env.get("ROTLIB_PROFILE") or None, dataset=env.get("ROTLIB_DATASET") or None,
                    device=env.get("ROTLIB_DEVICE") or None, home=home,
                    data=folder("ROTLIB_DATA", home / "data"), models=folder("ROTLIB_MODELS", home / "models"),
                    cache=folder("ROTLIB_CACHE", home / "cache"),
                    results=Path(env["ROTLIB_RESULTS"]).expanduser() if env.get("ROTLIB_RESULTS") else None,
                    offline=env.get("ROTLIB_OFFLINE", "0") == "1", progress=env.get("ROTLIB_PROGRESS", "1") != "0",
                    shipped_only=env.get("ROTLIB_SHIPPED_ONLY", "0") == "1",
                    shipped_measures=env.get("ROTLIB_SHIPPED_MEASURES", "1") != "0")
