"""From an interaction table to a :class:`~recdenoiser.data.dataset.SequenceDataset`.

Steps, in order (each one is recorded in ``dataset.meta["counts"]``):

1. optional rating threshold: keep rows with ``rating >= min_rating``;
2. optional removal of exact duplicates (same user, item and timestamp; the first is kept);
3. iterative k-core: drop users and items with fewer than ``k_core`` interactions, repeated
   until every remaining user and item has at least ``k_core`` (a fixed point);
4. ids: users re-indexed ``0..U-1`` and items ``1..N`` (``0`` is padding), both in order of
   first appearance in the filtered table (file order);
5. per-user sequences: users in order of their internal id, interactions sorted by timestamp
   with a stable sort (ties keep file order); without timestamps file order is kept.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from recdenoiser.data.dataset import SequenceDataset
from recdenoiser.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["k_core_filter", "preprocess"]


def k_core_filter(users: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Iterative k-core on integer-coded users and items.

    Args:
        users: int codes ``0..U-1`` per row.
        items: int codes ``0..I-1`` per row.
        k: minimum number of interactions per user and per item.

    Returns:
        A boolean mask of the rows kept and the number of passes that removed rows.
    """
    keep = np.ones(len(users), dtype=bool)
    passes = 0
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = int(items.max()) + 1 if len(items) else 0
    while True:
        u_counts = np.bincount(users[keep], minlength=n_users)
        i_counts = np.bincount(items[keep], minlength=n_items)
        ok = keep & (u_counts[users] >= k) & (i_counts[items] >= k)
        if ok.sum() == keep.sum():
            return keep, passes
        keep = ok
        passes += 1


def preprocess(
    df: pd.DataFrame,
    *,
    name: str,
    min_rating: float | None = None,
    k_core: int | None = 5,
    drop_duplicates: bool = False,
    source: str | None = None,
) -> SequenceDataset:
    """Filter, re-index and sort an interaction table into per-user sequences.

    Args:
        df: a table with ``user`` and ``item`` columns and optionally ``timestamp`` and
            ``rating`` (the output of :func:`~recdenoiser.data.readers.read_interactions`).
        name: dataset name stored in the result.
        min_rating: keep only rows with ``rating >= min_rating``; ``None`` keeps all.
        k_core: iterative k-core threshold for users and items; ``None`` or ``0`` disables it.
        drop_duplicates: drop repeated (user, item, timestamp) rows, keeping the first.
        source: where the data came from (recorded in ``meta`` and used in error messages).

    Returns:
        The dataset, with ``meta`` holding the options and the row counts of every step.

    Raises:
        DataError: missing columns, ratings required but absent, or nothing left after a step.
        ConfigError: a negative ``k_core``.
    """
    for col in ("user", "item"):
        if col not in df.columns:
            raise DataError(
                f"interaction table has no {col!r} column; columns present: "
                f"{', '.join(map(str, df.columns))}",
                source,
            )
    if k_core is not None and k_core < 0:
        raise ConfigError(f"k_core must be >= 0 or None, got {k_core}")
    k = int(k_core or 0)
    counts: dict[str, Any] = {"rows_read": len(df)}
    if len(df) == 0:
        raise DataError("no interactions to preprocess (the table is empty)", source)

    user_raw = df["user"].astype(str).to_numpy(dtype=object)
    item_raw = df["item"].astype(str).to_numpy(dtype=object)
    has_time = "timestamp" in df.columns
    times = df["timestamp"].to_numpy(dtype=np.int64) if has_time else None
    keep = np.ones(len(df), dtype=bool)

    def check_left(step: str, before: int) -> None:
        left = int(keep.sum())
        if left == 0:
            raise DataError(
                f"no interactions left after {step} ({before} rows before it, "
                f"{counts['rows_read']} read)",
                source,
            )

    # 1. rating threshold
    if min_rating is not None:
        if "rating" not in df.columns:
            raise DataError(
                f"min_rating={min_rating} needs ratings, but this data has none "
                "(set min_rating to None)",
                source,
            )
        ratings = df["rating"].to_numpy(dtype=np.float64)
        if np.isnan(ratings).any():
            raise DataError(
                f"min_rating={min_rating} needs ratings, but {int(np.isnan(ratings).sum())} "
                "rows have none",
                source,
            )
        before = int(keep.sum())
        keep &= ratings >= min_rating
        counts["removed_by_min_rating"] = before - int(keep.sum())
        check_left(f"min_rating={min_rating}", before)
    else:
        counts["removed_by_min_rating"] = 0

    # 2. duplicates
    if drop_duplicates:
        before = int(keep.sum())
        subset = ["user", "item"] + (["timestamp"] if has_time else [])
        dup = np.zeros(len(df), dtype=bool)
        dup[keep] = df[subset].iloc[np.flatnonzero(keep)].duplicated().to_numpy()
        keep &= ~dup
        counts["removed_duplicates"] = before - int(keep.sum())
        check_left("drop_duplicates", before)
    else:
        counts["removed_duplicates"] = 0

    # 3. k-core
    counts["k_core_passes"] = 0
    counts["removed_by_k_core"] = 0
    if k > 0:
        idx = np.flatnonzero(keep)
        u_codes, _ = pd.factorize(user_raw[idx])
        i_codes, _ = pd.factorize(item_raw[idx])
        core, passes = k_core_filter(u_codes.astype(np.int64), i_codes.astype(np.int64), k)
        before = int(keep.sum())
        keep[idx[~core]] = False
        counts["k_core_passes"] = passes
        counts["removed_by_k_core"] = before - int(keep.sum())
        check_left(f"{k}-core filtering", before)

    # 4. ids in order of first appearance
    idx = np.flatnonzero(keep)
    u_codes, user_ids = pd.factorize(user_raw[idx])
    i_codes, item_uniques = pd.factorize(item_raw[idx])
    u_codes = u_codes.astype(np.int64)
    items = i_codes.astype(np.int64) + 1

    # 5. per-user chronological order (stable: ties keep file order)
    if times is not None:
        kept_times = times[idx]
        order = np.lexsort((kept_times, u_codes))
    else:
        kept_times = None
        order = np.argsort(u_codes, kind="stable")
    n_users = len(user_ids)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(u_codes, minlength=n_users), out=offsets[1:])

    counts["rows_kept"] = len(idx)
    counts["skipped_lines"] = int(df.attrs.get("skipped_lines", 0))
    counts["duplicate_rows"] = int(df.attrs.get("duplicate_rows", 0))
    meta: dict[str, Any] = {
        "source": source if source is not None else df.attrs.get("source"),
        "format": df.attrs.get("format"),
        "options": {
            "min_rating": min_rating,
            "k_core": k_core,
            "drop_duplicates": drop_duplicates,
        },
        "counts": counts,
    }
    dataset = SequenceDataset(
        name=name,
        items=items[order],
        offsets=offsets,
        user_ids=np.asarray(user_ids, dtype=object),
        item_ids=np.concatenate([np.array([""], dtype=object), np.asarray(item_uniques)]),
        timestamps=None if kept_times is None else kept_times[order],
        meta=meta,
    )
    logger.info(
        "preprocessed %s: %d users, %d items, %d interactions (%d rows read)",
        name,
        dataset.n_users,
        dataset.n_items,
        dataset.n_interactions,
        counts["rows_read"],
    )
    return dataset
