"""rotlib installed non-editably (``pip install .``, the package copied out of the checkout) still finds the
project's shipped data and models: from inside the checkout (e.g. from ``notebooks/``), or anywhere with
``ROTLIB_HOME``."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys, rotlib
from rotlib import experiments as E, shipped
from rotlib.data import load_dataset
profile = rotlib.get_profile()
test = load_dataset("cifar10-5k", "test")
spec = E.rotnet_spec(profile)
print(json.dumps({"package": rotlib.__file__, "n_test": len(test), "shipped": str(shipped.find(spec.stem))}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("src")                   # a copy: the build must not touch the checkout
    shutil.copytree(ROOT / "rotlib", build / "rotlib", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, build / f)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(build)], check=True, capture_output=True)
    return target


def _probe(installed, cwd, **env):
    clean = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(installed), "ROTLIB_OFFLINE": "1", **env}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=clean, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_installed_package_finds_the_checkout_it_is_used_from(installed, tmp_path):
    found = _probe(installed, ROOT / "notebooks", ROTLIB_CACHE=str(tmp_path / "cache"))
    assert found["package"].startswith(str(installed))          # the copy, not the checkout's rotlib/
    assert found["n_test"] == 1000
    assert found["shipped"].startswith(str(ROOT / "models"))


def test_an_installed_package_elsewhere_follows_rotlib_home(installed, tmp_path):
    found = _probe(installed, tmp_path, ROTLIB_HOME=str(ROOT), ROTLIB_CACHE=str(tmp_path / "cache"))
    assert found["package"].startswith(str(installed)) and found["shipped"].startswith(str(ROOT / "models"))
    with pytest.raises(AssertionError, match="ROTLIB_HOME"):      # and without it, it says what to do
        _probe(installed, tmp_path, ROTLIB_CACHE=str(tmp_path / "cache"))
