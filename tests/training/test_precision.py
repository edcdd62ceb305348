"""bf16 mixed precision stays close to fp32 on a short run (same seed, same data)."""

from __future__ import annotations

from pathlib import Path

from recdenoiser.training.runner import train
from tests.conftest import make_run_config

# bf16 keeps 8 bits of mantissa: after a few epochs metrics drift a little, not a lot
TOLERANCE = 0.05


def test_bf16_training_is_within_tolerance_of_fp32(planted_file: Path, tmp_path: Path) -> None:
    results = {}
    for precision in ("32", "bf16"):
        config = make_run_config(
            planted_file,
            tmp_path / precision,
            train={"epochs": 4, "eval_every": 4, "precision": precision},
        )
        results[precision] = train(config).results["test"]["sampled"]
    for metric in ("hit@10", "ndcg@10"):
        assert abs(results["bf16"][metric] - results["32"][metric]) <= TOLERANCE, results
    assert results["bf16"]["hit@10"] > 0.5  # and it learned the planted structure
