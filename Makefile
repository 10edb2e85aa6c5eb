# The two commands a newcomer runs: `make demo` and `make test`. Both set up .venv on first use and
# reuse it afterwards (a stamp per dependency set; it is redone only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# On machines without an NVIDIA GPU, install the local CPU build of torch first: an unpinned torch
# would pull a multi-GB CUDA build.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

.PHONY: demo test bench lint clean help

help:
	@echo "make demo   - set up .venv and run the whole MAPO pipeline on the embedded default"
	@echo "make test   - set up .venv (with dev + verl extras) and run the test suite"
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
# root; the open_clip test needs a torchvision that matches torch).
test: $(VENV)/.stamp-test
	$(PY) -m pytest -rs

bench: $(VENV)/.stamp-bench
	$(PY) benchmarks/run.py

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
