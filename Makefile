# deepfx — `make run` installs everything into .venv and runs the pipeline on params.yaml;
# `make test` runs the test suite but the slow end-to-end runs; `make test-slow` runs those
# (real Snakemake/DVC/SLURM pipelines, ~25 min on 2 cores). CI runs both.
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
PYTHON ?= python3
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install nam-venv run test test-slow bench clean

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

# neural-amp-modeler's own loader checks deepfx's .nam export (tests/export/test_nam.py). It gets
# a venv of its own (its pins, e.g. pytorch_lightning and transformers, are none of deepfx's
# business), with the CPU torch installed first for the same reason as above.
NAM_VENV ?= .venv-nam
$(NAM_VENV)/.installed:
	$(PYTHON) -m venv $(NAM_VENV)
	$(NAM_VENV)/bin/pip install --quiet torch==2.13.0
	$(NAM_VENV)/bin/pip install --quiet neural-amp-modeler==0.13.0
	touch $@

nam-venv: $(NAM_VENV)/.installed

test: install nam-venv
	pytest -m "not slow"

test-slow: install
	pytest -m slow

bench: install
	python bench/throughput.py
	python bench/inference.py

clean:
	rm -rf data/clean data/processed models reports/effects reports/index.html reports/metrics.csv logs .snakemake mlruns mlflow.db mlartifacts
