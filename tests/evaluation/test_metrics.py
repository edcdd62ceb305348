"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recdenoiser.evaluation.metrics import (
    METRIC_NAMES,
    mean_metrics,
    metric_names,
    rank_metrics,
)


def test_hand_computed_values() -> None:
    ranks = np.array([0, 2, 10, 4, 19, 20])
    m = rank_metrics(ranks)
    np.testing.assert_array_equal(m["hit@1"], [1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(m["hit@5"], [1, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(m["hit@10"], [1, 1, 0, 1, 0, 0])  # rank 10 is not a hit@10
    np.testing.assert_array_equal(m["hit@20"], [1, 1, 1, 1, 1, 0])
    np.testing.assert_allclose(m["ndcg@10"], [1.0, 0.5, 0.0, 1 / math.log2(6), 0.0, 0.0])
    np.testing.assert_allclose(m["ndcg@1"], [1.0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(
        m["ndcg@20"], [1.0, 0.5, 1 / math.log2(12), 1 / math.log2(6), 1 / math.log2(21), 0.0]
    )
    np.testing.assert_allclose(m["mrr"], [1.0, 1 / 3, 1 / 11, 1 / 5, 1 / 20, 1 / 21])  # full MRR


def test_names_and_order() -> None:
    assert list(rank_metrics(np.array([0]), ks=(10, 5, 5)).keys()) == [
        "hit@5",
        "hit@10",
        "ndcg@5",
        "ndcg@10",
        "mrr",
    ]
    assert METRIC_NAMES == tuple(metric_names()) == tuple(rank_metrics(np.array([3])).keys())


def test_means_and_empty() -> None:
    means = mean_metrics(rank_metrics(np.array([0, 1])))
    assert means["hit@1"] == 0.5 and means["mrr"] == 0.75
    empty = rank_metrics(np.array([], dtype=np.int64))
    assert all(len(v) == 0 for v in empty.values())
    assert math.isnan(mean_metrics(empty)["mrr"])


@pytest.mark.parametrize(
    ("ranks", "ks"),
    [([-1], (1,)), ([0.5], (1,)), ([[0]], (1,)), ([0], (0,)), ([0], ()), ([0], (2.5,))],
)
def test_invalid_input(ranks: list, ks: tuple) -> None:
    with pytest.raises(ValueError):
        rank_metrics(np.array(ranks), ks=ks)
