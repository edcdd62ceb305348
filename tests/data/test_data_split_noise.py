"""Leave-one-out split as documented, and noise injection for the robustness study."""

from __future__ import annotations

import numpy as np
import pytest

from recdenoiser.data import PAD, LeaveOneOutSplit, NoiseRecord, SequenceDataset, inject_noise
from recdenoiser.errors import ConfigError, DataError


def make_dataset(seqs: list[list[int]], n_items: int | None = None) -> SequenceDataset:
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    n = n_items if n_items is not None else int(items.max())
    return SequenceDataset(
        name="t",
        items=items,
        offsets=offsets,
        user_ids=np.array([f"u{i}" for i in range(len(seqs))]),
        item_ids=np.array([""] + [f"i{i}" for i in range(1, n + 1)]),
    )


def random_split(n_users: int = 300, n_items: int = 40, seed: int = 0) -> LeaveOneOutSplit:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, n_items + 1, rng.integers(1, 30)).tolist() for _ in range(n_users)]
    return LeaveOneOutSplit.from_dataset(make_dataset(seqs, n_items))


def test_leave_one_out_split() -> None:
    ds = make_dataset([[1, 2, 3, 4, 5], [6, 7], [8, 9, 1], [2]])
    split = LeaveOneOutSplit.from_dataset(ds)
    assert split.train_sequence(0).tolist() == [1, 2, 3]
    assert split.valid_target[0] == 4
    assert split.test_target[0] == 5
    assert split.eval_input(0, "valid").tolist() == [1, 2, 3]
    assert split.eval_input(0, "test").tolist() == [1, 2, 3, 4]
    # short users: whole sequence for training, no targets, not evaluated
    assert split.train_sequence(1).tolist() == [6, 7]
    assert split.train_sequence(3).tolist() == [2]
    assert split.valid_target[1] == PAD
    assert split.test_target[3] == PAD
    assert split.train_sequence(2).tolist() == [8]
    assert (split.valid_target[2], split.test_target[2]) == (9, 1)
    assert split.eval_users.tolist() == [0, 2]
    assert split.n_short_users == 2


def test_noise_exact_count_and_constraints() -> None:
    split = random_split()
    total = len(split.train_items)
    noisy, record = inject_noise(split, 0.2, seed=7)
    assert isinstance(record, NoiseRecord)
    assert record.replaced.shape == split.train_items.shape
    assert record.n_replaced == round(0.2 * total)
    changed = noisy.train_items != split.train_items
    np.testing.assert_array_equal(changed, record.replaced)  # replaced positions all differ
    np.testing.assert_array_equal(record.original_items, split.train_items)
    np.testing.assert_array_equal(
        noisy.train_items[~record.replaced], split.train_items[~record.replaced]
    )
    users = np.searchsorted(split.train_offsets, record.positions, side="right") - 1
    new = noisy.train_items[record.positions]
    assert (new != split.valid_target[users]).all()
    assert (new != split.test_target[users]).all()
    assert ((new >= 1) & (new <= split.n_items)).all()
    # everything else is untouched
    np.testing.assert_array_equal(noisy.valid_target, split.valid_target)
    np.testing.assert_array_equal(noisy.test_target, split.test_target)
    np.testing.assert_array_equal(noisy.train_offsets, split.train_offsets)


def test_noise_seeded() -> None:
    split = random_split()
    a, ra = inject_noise(split, 0.3, seed=1)
    b, rb = inject_noise(split, 0.3, seed=1)
    c, rc = inject_noise(split, 0.3, seed=2)
    np.testing.assert_array_equal(a.train_items, b.train_items)
    np.testing.assert_array_equal(ra.replaced, rb.replaced)
    assert not np.array_equal(a.train_items, c.train_items)
    assert not np.array_equal(ra.replaced, rc.replaced)


def test_noise_replacements_cover_allowed_items_uniformly() -> None:
    # one user, 3 items: sequence 1 2 | valid 2 | test 3 -> position 0 (item 1) can only become
    # an item not in {1, 2, 3}; with 5 items: 4 or 5, about equally often
    split = LeaveOneOutSplit.from_dataset(make_dataset([[1, 1, 2, 3]], n_items=5))
    seen = [int(inject_noise(split, 0.5, seed=s)[0].train_items[0]) for s in range(200)]
    values = [v for v in seen if v != 1]
    assert set(values) <= {4, 5}
    assert 0.3 < values.count(4) / len(values) < 0.7


def test_noise_ratio_zero_and_bounds() -> None:
    split = random_split(50)
    same, record = inject_noise(split, 0.0, seed=0)
    assert same is split
    assert not record.replaced.any()
    for bad in (-0.1, 0.51, 1.0, float("nan")):
        with pytest.raises(ConfigError, match=r"within \[0, 0.5\]|a number"):
            inject_noise(split, bad, seed=0)


def test_noise_impossible_with_tiny_catalogue() -> None:
    split = LeaveOneOutSplit.from_dataset(make_dataset([[3, 3, 3, 1, 2]], n_items=3))
    with pytest.raises(DataError, match="cannot inject noise"):
        inject_noise(split, 0.5, seed=0)


def test_noise_vectorised_on_large_split() -> None:
    import time

    split = random_split(n_users=10_000, n_items=5_000, seed=3)
    start = time.perf_counter()
    _, record = inject_noise(split, 0.5, seed=0)
    assert time.perf_counter() - start < 2.0
    assert record.n_replaced == round(0.5 * len(split.train_items))
