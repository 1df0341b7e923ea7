# The two commands a new user runs (see README.md):
#   make notebooks   set up (once) and execute the notebook series in place
#   make test        set up (once) and run the unit tests and every notebook under nbval
# Both create .venv in the checkout, install the pinned packages and fetch Fashion-MNIST when needed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz

.PHONY: setup data notebooks test unit bench reproduce clean-cache

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Fashion-MNIST, offline first: Debian's package where apt is usable, else torchvision downloads it.
data: $(STAMP)
	@if [ -f $(FMNIST) ] || [ -f data/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || [ -f data/FashionMNIST/raw/t10k-labels-idx1-ubyte.gz ]; then \
	  echo "Fashion-MNIST: found"; \
	elif command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q dataset-fashion-mnist || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q dataset-fashion-mnist; }; \
	else \
	  $(PY) -c "from rotlib.data import load_dataset; load_dataset('fashion-mnist', 'test')"; \
	fi

notebooks: setup
	$(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1800 notebooks/[0-9]*.ipynb

unit: setup
	$(PY) -m pytest -q tests

test: setup
	$(PY) -m pytest -q tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=1200 --durations=0 --durations-min=2

bench: setup
	$(PY) benchmarks/throughput.py

reproduce: setup
	$(PY) -m rotlib reproduce --profile paper

clean-cache:
	rm -rf cache
