# Two entry points, each doing all set-up on a fresh machine:
#   make train   - create .venv, install, prepare ML-1M, train and evaluate SASRec
#   make test    - create .venv, install with dev tools, lint, type-check and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(or $(RECDENOISER_DATA_DIR),$(wildcard ../shared/data),data)
CONFIG ?= sasrec-ml-1m
# the dataset to prepare: the packaged config's suffix (sasrec-games -> games); the baselines'
# configs (fpmc, gru4rec, caser) default to ml-1m (other data: DATASET=games ARGS="--set ...")
DATASET ?= $(if $(filter fpmc gru4rec caser,$(CONFIG)),ml-1m,$(patsubst sasrec-%,%,$(patsubst \
  bert4rec-%,%,$(patsubst tisasrec-%,%,$(patsubst ssept-%,%,$(CONFIG))))))
ARGS ?=

.PHONY: install train test lint clean

$(BIN)/recdenoiser: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of PyTorch first, so that no multi-GB CUDA build is pulled in
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/recdenoiser

train: install
	RECDENOISER_DATA_DIR=$(DATA_DIR) $(BIN)/recdenoiser prepare $(DATASET)
	RECDENOISER_DATA_DIR=$(DATA_DIR) $(BIN)/recdenoiser train $(CONFIG) $(ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments
	$(BIN)/mypy

test: lint
	RECDENOISER_DATA_DIR=$(DATA_DIR) $(BIN)/pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
