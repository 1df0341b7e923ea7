# The two commands a new user runs (see README.md):
#   make notebooks   set up (once) and execute the notebook series in place, recording results/quick.json
#   make test        set up (once), run the unit tests and every notebook under nbval, then check the fresh
#                    numbers against the committed results/quick.json and the README/notebooks against it
# Both create .venv in the checkout and install the pinned packages. The quick profile's data (CIFAR-10, 5,000 +
# 1,000 images) ships in data/cifar10-5k; nothing is downloaded.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
PROFILE ?= $(or $(ROTLIB_PROFILE),quick)
FRESH  := $(CURDIR)/build/results-fresh
# executed without a person watching: no progress bars in stored outputs; MPLBACKEND unset, as Agg (CI's) would
# keep the notebooks' figures out of their stored outputs
RUN    := env -u MPLBACKEND ROTLIB_PROGRESS=0
# make test: the quick profile as shipped (no other dataset or device) loads every model from models/, and a notebook
# asking for one that is not there fails (rotlib.cache.ModelNotShippedError) instead of training it in CI
SHIPPED_ONLY := $(if $(and $(filter quick,$(PROFILE)),$(if $(ROTLIB_DATASET)$(ROTLIB_DEVICE),,yes)),1,0)
# a notebook cell may train for this long (seconds): 30 min on a CPU; the paper profile's 200-epoch cells take hours
CELL_TIMEOUT ?= $(if $(filter paper,$(PROFILE)),172800,1800)

.PHONY: setup constraints fashion-mnist models measures notebooks test unit results check-results bench bench-step bench-gpu gpu-smoke reproduce clean-cache browser-test

setup: $(STAMP)

# the exact versions CI uses (constraints.txt) within pyproject.toml's ranges
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# After an upgrade of the environment: record its exact versions for make setup and CI.
constraints: $(STAMP)
	@$(PY) -c "import selenium" 2>/dev/null || $(PY) -m pip install --quiet -c constraints.txt -e ".[browser]"
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^rotlib'; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt

# Fashion-MNIST (optional: ROTLIB_DATASET=fashion-mnist), offline first: Debian's package where apt is usable,
# else torchvision downloads it.
fashion-mnist: $(STAMP)
	@if [ -f $(FMNIST) ] || [ -f data/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || [ -f data/FashionMNIST/raw/t10k-labels-idx1-ubyte.gz ]; then \
	  echo "Fashion-MNIST: found"; \
	elif command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q dataset-fashion-mnist || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q dataset-fashion-mnist; }; \
	else \
	  $(PY) -c "from rotlib.data import load_dataset; load_dataset('fashion-mnist', 'test')"; \
	fi

# Trains every model the notebooks load that is not yet shipped in models/ (resumable: run it again after an
# interruption), and ships each one with its manifest as it finishes. Prints the plan and a time estimate first.
models: setup
	$(PY) -m rotlib.shipped --profile $(PROFILE)

# The probes' results (the slow part of notebooks 2, 3, 6 and 7: ~100 classifier heads), shipped in models/measures/
# so a fresh clone runs the series in minutes: every notebook executed into an empty cache (copies in build/, the
# notebooks themselves untouched) in this machine's evaluation precision (bf16 on a CPU with native bf16, else
# fp32), then the probes computed on shipped networks collected; they replace the shipped ones of that precision
# (the other precision's stay, made on another CPU kind). A model not shipped is an error (run make models first).
# make test computes a sample of them again (tests/test_measures.py); python -m rotlib.shipped --recheck does too.
MEASURES_CACHE := $(CURDIR)/build/measures-cache
measures: setup
	rm -rf $(MEASURES_CACHE) build/measures-run
	$(RUN) ROTLIB_CACHE=$(MEASURES_CACHE) ROTLIB_SHIPPED_MEASURES=0 ROTLIB_SHIPPED_ONLY=1 \
	  ROTLIB_RESULTS=$(CURDIR)/build/measures-run $(PY) -m jupyter nbconvert --to notebook --execute \
	  --output-dir build/measures-run --ExecutePreprocessor.timeout=$(CELL_TIMEOUT) notebooks/[0-9]*.ipynb
	$(PY) -m rotlib.shipped --measures $(MEASURES_CACHE)

# Executes every notebook in place and records each reported number in results/$(PROFILE).json and each stated
# verdict in results/$(PROFILE).verdicts.json (both started afresh),
# then regenerates the README's results and claims tables (and docs/models.md's models table) from it.
notebooks: setup
	rm -f results/$(PROFILE).json results/$(PROFILE).verdicts.json
	$(RUN) ROTLIB_RESULTS=$(CURDIR)/results $(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=$(CELL_TIMEOUT) notebooks/[0-9]*.ipynb
	$(MAKE) results

unit: setup
	$(PY) -m pytest -q tests

# nbval executes the notebooks into a fresh results file (SHIPPED_ONLY above: a model missing from
# rotlib.paper.models fails here instead of training in CI); compare fails when a number moved beyond its tolerance or a firm verdict changed its word (tolerances and margins from the runs on other CPU kinds in results/evidence/).
# Each phase prints its time (unit tests, notebooks, checks).
test: setup
	rm -rf $(FRESH)
	t=$$(date +%s); $(RUN) ROTLIB_RESULTS=$(FRESH) $(PY) -m pytest -q tests --durations=15 --durations-min=2 && \
	  echo "make test: unit tests took $$(( $$(date +%s) - t )) s"
	t=$$(date +%s); $(RUN) ROTLIB_RESULTS=$(FRESH) ROTLIB_SHIPPED_ONLY=$(SHIPPED_ONLY) $(PY) -m pytest -q notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=$(if $(filter paper,$(PROFILE)),172800,3600) --durations=0 --durations-min=2 && \
	  echo "make test: notebooks took $$(( $$(date +%s) - t )) s"
	t=$$(date +%s); $(PY) -m rotlib.report compare $(FRESH)/$(PROFILE).json results/$(PROFILE).json && \
	  $(MAKE) --no-print-directory check-results && echo "make test: checks took $$(( $$(date +%s) - t )) s"

# The README's results and claims tables and docs/models.md's shipped models table, generated from results/*.json
# and models/.
results: $(STAMP)
	$(PY) -m rotlib.report readme

# Fast, trains nothing: the generated tables, every "mean ± std" in README.md and docs/*.md and in the stored
# notebooks agree with results/.
check-results: $(STAMP)
	$(PY) -m rotlib.report check --profile $(PROFILE)

# The widgets in a real JupyterLab in headless Chromium (tools/browser_test.py), offline: Debian's chromium and
# chromium-driver, Selenium from the "browser" extra. NOTEBOOKS="notebooks/01_pretext_task.ipynb ..." picks the
# notebooks (default: every notebook that uses rotlib.widgets or the upload widget). Run it after make test / make
# notebooks: 02, 04 and 08 load their models from the cache. Screenshots: screenshots/browser-test/.
browser-test: setup
	@if ! [ -x "$${CHROMIUM:-/usr/bin/chromium}" ] || ! [ -x "$${CHROMEDRIVER:-/usr/bin/chromedriver}" ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q chromium chromium-driver || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; }; \
	fi
	@$(PY) -c "import selenium" 2>/dev/null || $(PY) -m pip install --quiet -c constraints.txt -e ".[browser]"
	ROTLIB_RESULTS=$(CURDIR)/build/results-browser $(PY) tools/browser_test.py $(NOTEBOOKS)

bench: setup
	$(PY) benchmarks/throughput.py

# Issue 15: where the time of one training step goes and what makes it faster (~20 min; see docs/speed.md).
bench-step: setup
	$(PY) benchmarks/step.py

# Issue 22: does the paper's path run on a CUDA GPU? (~3 min; says so and exits 0 on a machine without a GPU, fails
# when a GPU is there but torch cannot use it.) Writes
# benchmarks/gpu-smoke.json. bench-gpu: images/s of the paper NIN step (bf16, channels_last, torch.compile) and the
# paper profile's estimated wall time, into benchmarks/gpu-benchmark.json.
# An installed environment is used as it is (a copied checkout's new file times must not start an offline reinstall).
INSTALLED := $(if $(wildcard $(STAMP)),,setup)

gpu-smoke: $(INSTALLED)
	$(PY) benchmarks/gpu_smoke.py

bench-gpu: $(INSTALLED)
	$(PY) benchmarks/gpu_benchmark.py

reproduce: setup
	ROTLIB_RESULTS=$(CURDIR)/results $(PY) -m rotlib reproduce --profile paper

clean-cache:
	rm -rf cache
