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
from rotlib import experiments as E, store
from rotlib.data import load_dataset
profile = rotlib.get_profile()
test = load_dataset("cifar10-5k", "test")
spec = E.rotnet_spec(profile)
print(json.dumps({"package": rotlib.__file__, "n_test": len(test), "shipped": str(store.find(spec.stem))}))
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


# ------------------------------------------------- the orientation tool from a wheel, with no checkout
def _snapshot(*folders):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in Path(f).rglob("*")}


def test_the_orientation_tool_runs_from_a_wheel_in_a_fresh_venv_with_no_checkout(tmp_path):
    """``pip install <checkout>`` into a fresh virtual environment, then ``python -m rotlib orient`` from another
    folder: the model travels in the package, nothing of the checkout is read and no file is written."""
    import site
    import numpy as np
    import torch
    from PIL import Image
    from rotlib import orient as O
    from rotlib.data import load_dataset
    src = tmp_path / "src"                                   # build from a copy: the build must not touch the checkout
    shutil.copytree(ROOT / "rotlib", src / "rotlib", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    wheel, = (tmp_path / "dist").glob("rotlib-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    py = venv / "bin" / "python"
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                             capture_output=True, text=True).stdout.strip()
    # the dependencies (torch, ...) from this environment: a bare path line, so its editable rotlib stays out
    (Path(purelib) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)

    # 8 real CIFAR-10 test images turned by 0/90/180/270 degrees, ones the packaged model gets right
    orienter = O.Orienter.packaged()
    test = load_dataset("cifar10-5k", "test")
    photos, home, elsewhere = tmp_path / "photos", tmp_path / "home", tmp_path / "elsewhere"
    for folder in (photos, home, elsewhere):
        folder.mkdir()
    truth, i = {}, 0
    while len(truth) < 8:
        k = len(truth) % 4
        image = torch.rot90(test.images[i], k, dims=(1, 2))
        turn, confidence, _ = orienter.predict(image)
        if turn == O.TURNS[k] and confidence >= O.DEFAULT_MIN_CONFIDENCE:
            name = f"img{i:04d}.png"
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(photos / name)
            truth[name] = turn
        i += 1
    expected = [O.table_row(r) for r in O.orient_paths(orienter, photos)]
    before = _snapshot(photos, home, elsewhere)

    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}       # no ROTLIB_*, no PYTHONPATH: nothing points at the checkout
    where = subprocess.run([py, "-I", "-c", "import rotlib; print(rotlib.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), where                # the wheel's copy, not the checkout
    out = subprocess.run([py, "-I", "-m", "rotlib", "orient", str(photos)], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "packaged rotnet-" in out.stdout
    for row in expected:                                     # the same turn and confidence as in this process
        assert row in out.stdout, (row, out.stdout)
    assert sorted(truth.values()) == sorted(O.TURNS * 2)
    assert _snapshot(photos, home, elsewhere) == before      # touched no file: no cache, nothing written
    assert "8 files: 2 upright, 6 rotated" in out.stdout


# ------------------------------------------------- each notebook's first code cell: can it run here?
def _setup_cell():
    cells = []
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        cells.append("".join(first["source"]))
    assert len(cells) == 8 and len(set(cells)) == 1, "every notebook starts with the same set-up check"
    assert "rotlib.environment.check()" in cells[0]
    return cells[0]


def test_the_first_cell_outside_the_kit_says_what_to_do(installed, tmp_path):
    cell = _setup_cell()
    # a kernel without rotlib (python -S: no site-packages), as a notebook uploaded to a hosted Jupyter
    out = subprocess.run([sys.executable, "-I", "-S", "-c", cell], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.returncode != 0 and "rotlib is not installed in this Jupyter kernel: clone the kit" in out.stderr
    # rotlib installed from a wheel, no checkout anywhere: the data and models are missing, and it says so
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(installed), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", cell], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode != 0, out.stdout
    assert "SetupError: rotlib is installed but the shipped CIFAR-10 images" in out.stderr
    assert "open this notebook from the kit's checkout" in out.stderr and "ROTLIB_HOME" in out.stderr
    # the same installed copy pointed at the checkout: silent
    out = subprocess.run([sys.executable, "-c", cell], cwd=tmp_path, capture_output=True, text=True,
                         env={**env, "ROTLIB_HOME": str(ROOT)})
    assert out.returncode == 0 and out.stdout == "", out.stderr


def test_requires_python_is_true_of_the_code():
    """The code's syntax holds to the floor pyproject.toml states (CI runs that floor's version)."""
    import ast
    import re
    floor = re.search(r'requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert floor, "requires-python is stated"
    for path in (ROOT / "rotlib").rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, int(floor.group(1))))
