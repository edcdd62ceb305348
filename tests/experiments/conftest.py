"""Tiny grids on generated data (100 users, hidden 8, 1 epoch) shared by the experiment tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from recdenoiser.data.cache import CACHE_DIR_ENV
from tests.helpers import planted_sequences, write_user_item


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sequences = planted_sequences(n_users=100, n_items=40, min_len=6, max_len=15)
    return write_user_item(tmp_path_factory.mktemp("expdata") / "small.txt", sequences)


def tiny_base(data_file: Path, **train: Any) -> dict[str, Any]:
    """An inline base config: a one-epoch run that takes well under a second."""
    return {
        "seed": 1,
        "data": {"dataset": str(data_file), "format": "user-item", "k_core": 0, "max_len": 10},
        "model": {"hidden_size": 8, "num_blocks": 1, "num_heads": 1, "dropout": 0.1},
        "train": {
            "epochs": 1,
            "batch_size": 64,
            "eval_every": 1,
            "patience": None,
            "device": "cpu",
            "num_threads": 1,
            "progress": False,
            **train,
        },
        "eval": {"num_negatives": 20, "ks": [5, 10]},
    }


def write_grid(path: Path, grid: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def report_grid(tmp_path_factory: pytest.TempPathFactory, small_data: Path) -> dict[str, Path]:
    """A finished 8-cell grid (noise ratio x SASRec/+Denoiser x 2 seeds) and its database."""
    from recdenoiser.experiments import load_grid, run_grid

    root = tmp_path_factory.mktemp("report-grid")
    grid_file = write_grid(
        root / "noise.yaml",
        {
            "name": "tinynoise",
            "base": tiny_base(small_data),
            "axes": {
                "data.noise_ratio": [0.0, 0.2],
                "variant": {
                    "sasrec": {"denoiser.enabled": False},
                    "denoiser": {"denoiser.enabled": True},
                },
                "seed": [1, 2],
            },
        },
    )
    db = root / "db" / "results.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(root / "cache"))
        summary = run_grid(load_grid(grid_file), db, echo=lambda _: None)
    assert summary.counts["done"] == 8, summary
    return {"grid": grid_file, "db": db, "root": root}
