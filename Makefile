# The two commands a newcomer runs: `make demo` and `make test`. Both set up .venv on first use and
# reuse it afterwards (a stamp per dependency set; it is redone only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# On machines without an NVIDIA GPU, install the local CPU build of torch first: an unpinned torch
# would pull a multi-GB CUDA build.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

# The open_clip backend's tests need torchvision, and PyPI's torchvision wheels are CUDA builds whose compiled ops
# do not load beside the CPU torch above (import fails: "operator torchvision::nms does not exist"). They run in a
# venv of their own with a matching pair from PyPI: a CUDA build (about 6 GB installed) that runs on the CPU.
# On aarch64, PyPI's torch 2.9.1 is a CPU build and pairs with torchvision 0.24.1:
#   make test-openclip OPENCLIP_TORCH="torch==2.9.1 torchvision==0.24.1"
# --no-compile: byte-compiling all of torch's CUDA build took longer than installing it (395 s vs 146 s on the
# 2-core machine); the modules the tests import are compiled when first imported, and kept (the target clears
# PYTHONDONTWRITEBYTECODE: without the cached bytecode each run spent ~45 s more importing torch and open_clip).
OPENCLIP_VENV := .venv-openclip
OPENCLIP_TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-openclip bench lint clean help

help:
	@echo "make demo   - set up .venv and run the whole MAPO pipeline on the embedded default"
	@echo "make test   - set up .venv (with dev + verl extras) and run the test suite"
	@echo "make test-openclip - set up .venv-openclip (torch + torchvision, ~6 GB) and run the open_clip tests"
	@echo "make bench  - run the benchmark suite (prints a table, writes benchmarks/results.json)"
	@echo "make clean  - remove .venv and generated artifacts"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.stamp-torch: | $(VENV)/bin/python
	$(PIP) install "$(TORCH_SPEC)"
	@touch $@

$(VENV)/.stamp-base: pyproject.toml $(VENV)/.stamp-torch
	$(PIP) install -e .
	@touch $@

$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-torch
	$(PIP) install -e ".[dev,verl]"
	@touch $@

$(VENV)/.stamp-bench: pyproject.toml $(VENV)/.stamp-test
	$(PIP) install -e ".[dev,verl,bench]"
	@touch $@

demo: $(VENV)/.stamp-base
	$(VENV)/bin/mapo demo

# -rs: a skipped test says why (the viewer's browser test needs Debian's chromium, which .ci/run installs as
# root; the open_clip tests need a torchvision that matches torch: `make test-openclip` runs them).
test: $(VENV)/.stamp-test
	$(PY) -m pytest -rs

$(OPENCLIP_VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(OPENCLIP_VENV)
	$(OPENCLIP_VENV)/bin/python -m pip --disable-pip-version-check -q install --upgrade pip
	$(OPENCLIP_VENV)/bin/python -m pip --disable-pip-version-check -q install --no-compile \
		$(OPENCLIP_TORCH) -e ".[dev,openclip]"
	@touch $@

# The import check first: here a broken open_clip must fail the target, not turn into the tests' skip.
test-openclip: export PYTHONDONTWRITEBYTECODE :=
test-openclip: $(OPENCLIP_VENV)/.stamp
	$(OPENCLIP_VENV)/bin/python -c "import open_clip, torch, torchvision; print('open_clip', open_clip.__version__, \
		'torch', torch.__version__, 'torchvision', torchvision.__version__)"
	$(OPENCLIP_VENV)/bin/python -m pytest -rs tests/verifier/test_open_clip.py

bench: $(VENV)/.stamp-bench
	$(PY) benchmarks/run.py

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) $(OPENCLIP_VENV) runs build *.egg-info src/*.egg-info
