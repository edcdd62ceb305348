"""Shared fixtures: a planted sequential dataset, a tiny run configuration, one trained run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from recdenoiser.config import RunConfig
from recdenoiser.data.cache import CACHE_DIR_ENV
from recdenoiser.data.dataset import SequenceDataset
from recdenoiser.training import data as training_data
from tests.helpers import N_ITEMS, dataset_from_sequences, planted_sequences, write_user_item

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test writes the processed-dataset cache under ``~/.cache``."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def planted() -> list[list[int]]:
    return planted_sequences()


@pytest.fixture(scope="session")
def planted_file(tmp_path_factory: pytest.TempPathFactory, planted: list[list[int]]) -> Path:
    return write_user_item(tmp_path_factory.mktemp("data") / "planted.txt", planted)


@pytest.fixture(scope="session")
def planted_dataset(planted: list[list[int]]) -> SequenceDataset:
    return dataset_from_sequences(planted, N_ITEMS)


def make_run_config(data_file: Path, output_dir: Path, **sections: dict[str, Any]) -> RunConfig:
    """The tiny configuration every training test starts from; ``sections`` update it."""
    raw: dict[str, Any] = {
        "seed": 7,
        "output_dir": str(output_dir),
        "data": {
            "dataset": str(data_file),
            "format": "user-item",
            "k_core": 0,
            "max_len": 20,
        },
        "model": {"hidden_size": 16, "num_blocks": 1, "num_heads": 1, "dropout": 0.1},
        "train": {
            "epochs": 2,
            "batch_size": 64,
            "lr": 5e-3,
            "eval_every": 1,
            "patience": None,
            "device": "cpu",
            "num_threads": 1,
            "progress": False,
        },
        "eval": {"num_negatives": 20, "ks": [1, 5, 10]},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return RunConfig.model_validate(raw)


@pytest.fixture()
def tiny_config(tmp_path: Path, planted_file: Path) -> RunConfig:
    return make_run_config(planted_file, tmp_path / "runs")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, planted_file: Path) -> Any:
    """One short training run on the planted data, shared by training and CLI tests."""
    from recdenoiser.training.runner import train

    out = tmp_path_factory.mktemp("trained")
    config = make_run_config(planted_file, out / "runs", name="main", train={"epochs": 6})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(out / "cache"))
        return train(config)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI's ``main`` configures the package's loggers and captures warnings; undo both."""
    names = ("recdenoiser", "lightning", "lightning.pytorch", "lightning.fabric", "py.warnings")
    saved = {
        n: (
            logging.getLogger(n).level,
            list(logging.getLogger(n).handlers),
            logging.getLogger(n).propagate,
        )
        for n in names
    }
    yield
    logging.captureWarnings(False)
    for name, (level, handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def spy_on_epochs(monkeypatch: pytest.MonkeyPatch, seen: list[int]) -> None:
    """Append to ``seen`` the epoch counter each epoch's batches are drawn with.

    ``_EpochBatches.__iter__`` is a generator: it reads ``epoch`` when the first batch is drawn,
    so the spy records it at that moment too (not when ``iter()`` is called).
    """
    original = training_data._EpochBatches.__iter__

    def spy(self: Any) -> Any:
        batches = original(self)
        first = next(batches, None)
        seen.append(self.epoch)
        if first is not None:
            yield first
            yield from batches

    monkeypatch.setattr(training_data._EpochBatches, "__iter__", spy)


@pytest.fixture()
def epoch_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The epochs trained during a test (see :func:`spy_on_epochs`)."""
    seen: list[int] = []
    spy_on_epochs(monkeypatch, seen)
    return seen
