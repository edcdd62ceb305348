"""Negative sampling for the sampled protocol: validity, determinism, uniformity, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from recdenoiser.data.dataset import SequenceDataset
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.evaluation import candidates as cand_mod
from recdenoiser.evaluation.candidates import InsufficientNegativesError, sample_negatives


def make_split(sequences: list[list[int]], n_items: int) -> LeaveOneOutSplit:
    """A split over hand-made sequences of internal item ids (1..n_items)."""
    lengths = [len(s) for s in sequences]
    ds = SequenceDataset(
        name="tiny",
        items=np.array([i for s in sequences for i in s], dtype=np.int64),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        user_ids=np.array([f"u{u}" for u in range(len(sequences))]),
        item_ids=np.array([""] + [f"i{i}" for i in range(1, n_items + 1)]),
    )
    return LeaveOneOutSplit.from_dataset(ds)


def random_split(n_users: int = 60, n_items: int = 40, seed: int = 3) -> LeaveOneOutSplit:
    rng = np.random.default_rng(seed)
    seqs = [
        rng.integers(1, n_items + 1, size=int(rng.integers(3, 25))).tolist() for _ in range(n_users)
    ]
    return make_split(seqs, n_items)


def check_valid(split: LeaveOneOutSplit, users: np.ndarray, neg: np.ndarray, k: int) -> None:
    assert neg.shape == (len(users), k) and neg.dtype == np.int64
    for u, row in zip(users.tolist(), neg, strict=True):
        assert len(set(row.tolist())) == k, "sampled with replacement"
        assert row.min() >= 1 and row.max() <= split.n_items
        assert not set(row.tolist()) & set(split.dataset.sequence(u).tolist())


def test_valid_negatives() -> None:
    split = random_split()
    users = np.arange(split.n_users)
    neg = sample_negatives(split, users, num_negatives=10, seed=0)
    check_valid(split, users, neg, 10)


def test_deterministic_per_user_regardless_of_subset_and_order() -> None:
    split = random_split()
    users = np.arange(split.n_users)
    full = sample_negatives(split, users, 10, seed=5)
    subset = np.array([42, 7, 7, 0, 13])
    np.testing.assert_array_equal(sample_negatives(split, subset, 10, seed=5), full[subset])
    np.testing.assert_array_equal(sample_negatives(split, users, 10, seed=5), full)
    assert not np.array_equal(sample_negatives(split, users, 10, seed=6), full)


def test_chunking_does_not_change_result(monkeypatch: pytest.MonkeyPatch) -> None:
    split = random_split()
    users = np.arange(split.n_users)
    ref = sample_negatives(split, users, 10, seed=1)
    monkeypatch.setattr(cand_mod, "_CHUNK_USERS", 7)
    np.testing.assert_array_equal(sample_negatives(split, users, 10, seed=1), ref)


def test_uniform_over_unseen_items() -> None:
    n_items, k = 40, 5
    seq = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # 30 unseen items
    split = make_split([seq] * 3000, n_items)
    neg = sample_negatives(split, np.arange(3000), k, seed=0)
    counts = np.bincount(neg.ravel(), minlength=n_items + 1)
    assert counts[:11].sum() == 0
    expected = 3000 * k / 30  # 500 per item
    assert np.all(np.abs(counts[11:] - expected) < 0.2 * expected)


def test_exact_method_for_crowded_histories() -> None:
    n_items = 40
    crowded = list(range(1, 33))  # 8 unseen items < EXACT_FRACTION * 40 -> exact method
    split = make_split([crowded] * 2000 + [list(range(1, 36))], n_items)
    neg = sample_negatives(split, np.arange(2001), 5, seed=0)
    check_valid(split, np.arange(2001), neg, 5)
    counts = np.bincount(neg[:2000].ravel(), minlength=n_items + 1)[33:]
    assert np.all(np.abs(counts - 1250) < 0.15 * 1250)  # 2000 * 5 / 8 per unseen item
    assert sorted(neg[2000].tolist()) == [36, 37, 38, 39, 40]  # exactly the 5 unseen items


def test_fallback_after_rejection_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    split = random_split()
    users = np.arange(split.n_users)
    monkeypatch.setattr(cand_mod, "_MAX_ROUNDS", 0)  # everyone goes to the exact method
    neg = sample_negatives(split, users, 10, seed=0)
    check_valid(split, users, neg, 10)
    np.testing.assert_array_equal(sample_negatives(split, users[::-1], 10, seed=0), neg[::-1])


def test_too_few_unseen_items_raises() -> None:
    split = make_split([list(range(1, 36)), [1, 2, 3]], 40)
    with pytest.raises(InsufficientNegativesError, match="only 5 items"):
        sample_negatives(split, np.array([1, 0]), 6)
    assert sample_negatives(split, np.array([1]), 6).shape == (1, 6)  # other users are fine


def test_edge_cases() -> None:
    split = random_split()
    assert sample_negatives(split, np.array([0, 1]), 0).shape == (2, 0)
    assert sample_negatives(split, np.array([], dtype=np.int64), 5).shape == (0, 5)
    with pytest.raises(ValueError):
        sample_negatives(split, np.array([split.n_users]), 5)
    with pytest.raises(ValueError):
        sample_negatives(split, np.array([0]), -1)
