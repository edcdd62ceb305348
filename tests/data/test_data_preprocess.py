"""Preprocessing: rating threshold, duplicates, iterative k-core, ids, chronological order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recdenoiser.data import PAD, SequenceDataset, preprocess
from recdenoiser.data.preprocess import k_core_filter
from recdenoiser.errors import ConfigError, DataError


def frame(rows: list[tuple], columns: tuple[str, ...] = ("user", "item")) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    df["user"] = df["user"].astype(str)
    df["item"] = df["item"].astype(str)
    return df


def sequences(ds: SequenceDataset) -> dict[str, list[str]]:
    return {ds.user_ids[u]: [ds.item_ids[i] for i in ds.sequence(u)] for u in range(ds.n_users)}


def test_k_core_needs_several_passes() -> None:
    # 2-core: item "c" has one interaction -> removing it leaves user "z" with one, which then
    # leaves item "b" with one, ... one pass is not enough.
    rows = [
        ("x", "a"),
        ("x", "b"),
        ("y", "a"),
        ("y", "b"),
        ("z", "b"),
        ("z", "c"),
        ("w", "c"),
        ("w", "d"),
        ("v", "d"),
    ]
    users, _ = pd.factorize(pd.Series([r[0] for r in rows]))
    items, _ = pd.factorize(pd.Series([r[1] for r in rows]))
    _, passes = k_core_filter(users.astype(np.int64), items.astype(np.int64), 2)
    assert passes >= 2
    ds = preprocess(frame(rows), name="t", k_core=2)
    assert sequences(ds) == {"x": ["a", "b"], "y": ["a", "b"]}
    assert ds.meta["counts"]["removed_by_k_core"] == 5
    assert ds.meta["counts"]["k_core_passes"] == passes
    # fixed point: every user and item has at least 2 interactions
    assert ds.lengths.min() >= 2
    assert np.bincount(ds.items)[1:].min() >= 2


def test_k_core_off() -> None:
    rows = [("u", "a"), ("v", "b")]
    for k in (None, 0):
        ds = preprocess(frame(rows), name="t", k_core=k)
        assert ds.n_interactions == 2
    with pytest.raises(ConfigError):
        preprocess(frame(rows), name="t", k_core=-1)


def test_stable_chronological_sort_ties_keep_file_order() -> None:
    rows = [
        ("u", "a", 30),
        ("v", "z", 5),
        ("u", "b", 10),
        ("u", "c", 20),
        ("u", "d", 10),
        ("u", "e", 20),
        ("v", "y", 1),
    ]
    ds = preprocess(frame(rows, ("user", "item", "timestamp")), name="t", k_core=None)
    assert sequences(ds) == {"u": ["b", "d", "c", "e", "a"], "v": ["y", "z"]}
    assert ds.timestamps is not None
    assert ds.timestamps.tolist() == [10, 10, 20, 20, 30, 1, 5]


def test_file_order_without_timestamps() -> None:
    rows = [("u", "c"), ("v", "a"), ("u", "a"), ("u", "b")]
    ds = preprocess(frame(rows), name="t", k_core=None)
    assert ds.timestamps is None
    assert sequences(ds) == {"u": ["c", "a", "b"], "v": ["a"]}


def test_reindexing_and_id_round_trip(tmp_path: Path) -> None:
    rows = [("u9", "i5"), ("u2", "i7"), ("u9", "i7"), ("u2", "i1")]
    ds = preprocess(frame(rows), name="t", k_core=None)
    # users 0..U-1 and items 1..N in order of first appearance, 0 = padding
    assert ds.user_ids.tolist() == ["u9", "u2"]
    assert ds.item_ids.tolist() == ["", "i5", "i7", "i1"]
    assert ds.items.tolist() == [1, 2, 2, 3]
    assert ds.offsets.tolist() == [0, 2, 4]
    assert PAD not in ds.items
    for raw_user, raw_items in [("u9", ["i5", "i7"]), ("u2", ["i7", "i1"])]:
        u = ds.user_index(raw_user)
        internal = [ds.item_index(i) for i in raw_items]
        assert ds.sequence(u).tolist() == internal
        assert [ds.item_ids[i] for i in internal] == raw_items
    ds.save(tmp_path / "d.npz")
    back = SequenceDataset.load(tmp_path / "d.npz")
    assert back.items.tolist() == ds.items.tolist()
    assert back.meta["counts"] == ds.meta["counts"]


def test_min_rating_and_counts() -> None:
    rows = [("u", "a", 1.0), ("u", "b", 4.0), ("v", "a", 5.0), ("v", "c", 3.5)]
    ds = preprocess(frame(rows, ("user", "item", "rating")), name="t", min_rating=4, k_core=None)
    assert sequences(ds) == {"u": ["b"], "v": ["a"]}
    counts = ds.meta["counts"]
    assert counts["rows_read"] == 4
    assert counts["removed_by_min_rating"] == 2
    assert counts["rows_kept"] == 2
    assert ds.meta["options"] == {"min_rating": 4, "k_core": None, "drop_duplicates": False}


def test_min_rating_without_ratings() -> None:
    with pytest.raises(DataError, match="needs ratings"):
        preprocess(frame([("u", "a")]), name="t", min_rating=3)


def test_drop_duplicates() -> None:
    rows = [("u", "a", 1), ("u", "a", 1), ("u", "a", 2), ("u", "b", 3)]
    df = frame(rows, ("user", "item", "timestamp"))
    assert preprocess(df, name="t", k_core=None).n_interactions == 4
    ds = preprocess(df, name="t", k_core=None, drop_duplicates=True)
    assert ds.n_interactions == 3
    assert ds.meta["counts"]["removed_duplicates"] == 1


def test_emptied_by_step_says_which() -> None:
    rows = [("u", "a", 1.0), ("v", "b", 2.0)]
    with pytest.raises(DataError, match=r"after min_rating=4 \(2 rows before"):
        preprocess(frame(rows, ("user", "item", "rating")), name="t", min_rating=4, source="f.csv")
    with pytest.raises(DataError, match=r"f\.csv: no interactions left after 5-core filtering"):
        preprocess(frame(rows, ("user", "item", "rating")), name="t", k_core=5, source="f.csv")
