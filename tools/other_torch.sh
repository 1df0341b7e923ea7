#!/usr/bin/env bash
# Does rotlib install into an environment that already has another supported torch, and keep it? And do the unit
# tests pass on the oldest torch/torchvision pyproject.toml allows? Usage: bash tools/other_torch.sh [TORCH] [TORCHVISION]
# Makes a throw-away venv (build/other-torch), installs that torch first (as a hosted notebook has it), then
# `pip install -e ".[dev]"` without constraints.txt, then the unit tests (not the notebooks).
set -euo pipefail
cd "$(dirname "$0")/.."
torch=${1:-2.13.0} vision=${2:-0.28.0}
venv=build/other-torch
rm -rf "$venv" && python3 -m venv "$venv"
# from PyPI itself: a matching torch/torchvision pair, as a hosted notebook would have it
# (by the wheel's address: an index that also lists "2.13.0+cpu" would pick that one, and torchvision 0.28.0 from
# PyPI is built for the CUDA wheel, so the two would not load together)
wheel=$(curl -fsS https://pypi.org/simple/torch/ | grep -o "https://[^\"#]*/torch-$torch-cp311-cp311-manylinux_2_28_x86_64.whl" | head -1)
"$venv/bin/python" -m pip install --quiet "torch @ $wheel" "torchvision==$vision"
before=$("$venv/bin/python" -c "import torch, torchvision; print(torch.__version__, torchvision.__version__)")
"$venv/bin/python" -m pip install --quiet -e ".[dev]"
after=$("$venv/bin/python" -c "import torch, torchvision; print(torch.__version__, torchvision.__version__)")
echo "torch, torchvision before pip install -e .: $before; after: $after"
[ "$before" = "$after" ] || { echo "FAIL: pip install -e . replaced torch"; exit 1; }
"$venv/bin/python" -m pytest -q tests -p no:cacheprovider
