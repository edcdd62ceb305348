"""Synthetic noise for the robustness study: replace a share of training items at random.

``inject_noise(split, ratio, seed)`` picks exactly ``round(ratio * n_train)`` positions among all
users' training items, uniformly without replacement, and replaces each by an item drawn
uniformly from the items that differ from the original one and from that user's validation and
test targets. Validation/test targets and every other position are left untouched.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from recdenoiser.data.dataset import PAD
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["MAX_NOISE_RATIO", "NoiseRecord", "inject_noise"]

MAX_NOISE_RATIO = 0.5


@dataclass
class NoiseRecord:
    """Which training positions were replaced.

    Attributes:
        replaced: bool ``[n_train]`` aligned with ``split.train_items``.
        original_items: int64 ``[n_train]``, the training items before replacement (so
            ``original_items[replaced]`` are the items that were overwritten).
        ratio: the requested share of replaced positions.
        seed: the seed of the NumPy generator.
    """

    replaced: np.ndarray
    original_items: np.ndarray
    ratio: float
    seed: int

    @property
    def n_replaced(self) -> int:
        return int(self.replaced.sum())

    @property
    def positions(self) -> np.ndarray:
        """Indices into ``train_items`` of the replaced positions (sorted)."""
        return np.flatnonzero(self.replaced)


def inject_noise(
    split: LeaveOneOutSplit, ratio: float, seed: int
) -> tuple[LeaveOneOutSplit, NoiseRecord]:
    """Replace ``round(ratio * n_train)`` random training items by random other items.

    Args:
        split: the clean leave-one-out split.
        ratio: share of training positions to replace, within ``[0, 0.5]``.
        seed: seed of ``numpy.random.default_rng``; equal seeds give equal noise.

    Returns:
        The noisy split (a copy; ``split`` is not modified) and the record of what changed.
        With ``ratio == 0`` the split itself is returned with an all-False mask.

    Raises:
        ConfigError: ``ratio`` outside ``[0, 0.5]`` or not a number.
        DataError: some chosen position has no admissible replacement (tiny item sets).
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or math.isnan(ratio):
        raise ConfigError(f"noise ratio must be a number in [0, {MAX_NOISE_RATIO}], got {ratio!r}")
    if not 0.0 <= ratio <= MAX_NOISE_RATIO:
        raise ConfigError(f"noise ratio must be within [0, {MAX_NOISE_RATIO}], got {ratio}")
    train = np.asarray(split.train_items, dtype=np.int64)
    total = len(train)
    n_replace = round(ratio * total)
    original = train.copy()
    if n_replace == 0:
        record = NoiseRecord(np.zeros(total, dtype=bool), original, float(ratio), int(seed))
        return split, record

    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(total, size=n_replace, replace=False))
    users = np.searchsorted(split.train_offsets, positions, side="right") - 1
    n_items = split.n_items

    # forbidden values per position: original, valid and test target (PAD is never drawn)
    forbidden = np.stack(
        [original[positions], split.valid_target[users], split.test_target[users]], axis=1
    )
    forbidden = np.sort(forbidden, axis=1)
    # duplicates and PAD do not shrink the candidate set: push them out of range
    dup = np.zeros_like(forbidden, dtype=bool)
    dup[:, 1:] = forbidden[:, 1:] == forbidden[:, :-1]
    forbidden = np.where(dup | (forbidden == PAD), n_items + 1, forbidden)
    forbidden = np.sort(forbidden, axis=1)
    n_allowed = n_items - (forbidden <= n_items).sum(axis=1)
    if (n_allowed <= 0).any():
        raise DataError(
            f"cannot inject noise: only {n_items} items, so some users have no item that "
            "differs from the original and their validation/test targets"
        )
    # draw uniformly among the allowed values: an index into 1..n_items minus the forbidden
    # ones, mapped by skipping each forbidden value in increasing order
    candidate = rng.integers(1, n_allowed + 1, dtype=np.int64)
    for j in range(forbidden.shape[1]):
        candidate += candidate >= forbidden[:, j]
    noisy = original.copy()
    noisy[positions] = candidate
    replaced = np.zeros(total, dtype=bool)
    replaced[positions] = True
    logger.info(
        "injected noise: replaced %d of %d training items (ratio %.3f, seed %d)",
        n_replace,
        total,
        ratio,
        seed,
    )
    record = NoiseRecord(replaced, original, float(ratio), int(seed))
    return split.with_train_items(noisy), record
