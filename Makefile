# deepfx — `make run` installs everything into .venv and runs the pipeline on params.yaml;
# `make test` runs the test suite (slow end-to-end tests included; `make test-fast` skips them).
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
PYTHON ?= python3
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install run test test-fast bench clean

install: $(VENV)/.installed

# torch is installed first and pinned: this machine has its CPU wheel, an unpinned torch would
# pull gigabytes of CUDA.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: install
	snakemake --cores $(CORES)

test: install
	pytest

test-fast: install
	pytest -m "not slow"

bench: install
	python bench/throughput.py

clean:
	rm -rf data/clean data/processed models reports/effects reports/index.html reports/metrics.csv logs .snakemake mlruns mlflow.db mlartifacts
