"""Ranking metrics from the 0-based rank of each user's held-out target.

A rank ``r`` means ``r`` competing items scored at least as high as the target (ties count
against the target), so ``r = 0`` is a perfect prediction.

* ``hit@k``  = 1 if ``r < k`` else 0
* ``ndcg@k`` = ``1 / log2(r + 2)`` if ``r < k`` else 0 (one relevant item, so IDCG = 1)
* ``mrr``    = ``1 / (r + 1)``, not truncated at any cut-off (full MRR)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)
METRIC_FAMILIES: tuple[str, ...] = ("hit", "ndcg")


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Validate cut-offs: positive integers; returned sorted and without duplicates."""
    out = sorted({int(k) for k in ks})
    if not out or out[0] < 1 or any(int(k) != k for k in ks):
        raise ValueError(f"cut-offs must be positive integers, got {tuple(ks)!r}")
    return tuple(out)


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """Names produced by :func:`rank_metrics`, in order: ``hit@k...``, ``ndcg@k...``, ``mrr``."""
    ks = check_ks(ks)
    return [f"{family}@{k}" for family in METRIC_FAMILIES for k in ks] + ["mrr"]


METRIC_NAMES: tuple[str, ...] = tuple(metric_names(DEFAULT_KS))
"""Metric names for the default cut-offs ``(1, 5, 10, 20)``."""


def rank_metrics(
    ranks: np.ndarray | Sequence[int], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Per-user metrics from 0-based target ranks.

    Args:
        ranks: int ``[U]``, the number of competitors scored ``>=`` the target (``>= 0``).
        ks: cut-offs for ``hit@k`` and ``ndcg@k``.

    Returns:
        ``{name: float64 [U]}`` for every name in :func:`metric_names` (same order).
    """
    r = np.asarray(ranks)
    if r.ndim != 1:
        raise ValueError(f"ranks must be one-dimensional, got shape {r.shape}")
    if r.size and (not np.issubdtype(r.dtype, np.integer) or r.min() < 0):
        raise ValueError("ranks must be non-negative integers")
    r = r.astype(np.float64)
    gain = 1.0 / np.log2(r + 2.0)
    out: dict[str, np.ndarray] = {}
    ks = check_ks(ks)
    for k in ks:
        out[f"hit@{k}"] = (r < k).astype(np.float64)
    for k in ks:
        out[f"ndcg@{k}"] = np.where(r < k, gain, 0.0)
    out["mrr"] = 1.0 / (r + 1.0)
    return out


def mean_metrics(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """Means of per-user metric arrays (``nan`` for an empty array)."""
    return {
        name: float(values.mean()) if len(values) else float("nan")
        for name, values in per_user.items()
    }
