"""Negative candidates for the sampled evaluation protocol.

Every evaluated user gets ``num_negatives`` items drawn uniformly **without replacement** from
the items ``1..n_items`` that the user never interacted with (anything in
``split.dataset.sequence(u)``, which includes both held-out targets).

Determinism: the negatives of a user depend only on ``(seed, user)`` and the dataset, never on
which other users are evaluated, on their order or on any batch size, so every model compared
with the same seed is ranked against the same candidates. This is achieved with a counter-based
random stream: the ``j``-th proposal of user ``u`` is ``1 + floor(h(seed, u, j) * n_items / 2^32)``
where ``h`` is a SplitMix64-style 64-bit hash (top 32 bits kept). A user's negatives are the first
``num_negatives`` distinct proposals of its stream that are not in its history (rejection
sampling, vectorised over users). How many proposals are computed at once is an implementation
detail that does not change the result.

Users with few available items (under :data:`EXACT_FRACTION` of the catalogue) use an exact
method instead: every available item gets the key ``h'(seed, u, item)`` and the
``num_negatives`` items with the smallest keys are taken (again a uniform sample without
replacement that depends only on ``(seed, u)``).

Stage: the candidates do **not** depend on the stage. Both targets are part of the excluded
history, so the same negatives are valid for ``valid`` and ``test``; reusing them makes the two
stages directly comparable.

Too few items: if a user has fewer than ``num_negatives`` items it never interacted with, an
:class:`InsufficientNegativesError` is raised (naming the user and the counts) rather than
silently returning a ragged or padded candidate set; lower ``num_negatives`` or use the full
protocol for such data.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.errors import RecDenoiserError

logger = logging.getLogger(__name__)

EXACT_FRACTION = 0.25
"""Users with fewer than this fraction of the catalogue available use the exact method."""

_CHUNK_USERS = 8192
_MAX_ROUNDS = 6
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM_PROPOSAL = np.uint64(0x5851F42D4C957F2D)
_STREAM_EXACT = np.uint64(0x2545F4914F6CDD1D)


class EvaluationError(RecDenoiserError):
    """An evaluation request that cannot be carried out on the given data or model output."""


class InsufficientNegativesError(EvaluationError):
    """A user has fewer never-seen items than the requested number of negatives."""


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, element-wise on a ``uint64`` array (wrapping arithmetic)."""
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _user_keys(seed: int, users: np.ndarray, stream: np.uint64) -> np.ndarray:
    """Per-user 64-bit keys ``[U]`` derived from ``(seed, stream, user)``."""
    seed_key = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) ^ stream)
    with np.errstate(over="ignore"):
        return _mix64(users.astype(np.uint64) * _GOLDEN + seed_key)


def _hash32(user_keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Uniform 32-bit values ``[U, M]`` from user keys ``[U]`` and counters ``[M]`` (uint64)."""
    with np.errstate(over="ignore"):
        mixed = user_keys[:, None] + (counters[None, :] + np.uint64(1)) * _GOLDEN
    return _mix64(mixed) >> np.uint64(32)


def _histories(split: LeaveOneOutSplit, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys ``row * (n_items + 1) + item`` of the users' full sequences.

    Returns:
        keys: int64 ``[H]`` sorted unique history keys of the rows ``0..len(users)-1``.
        n_unique: int64 ``[len(users)]`` number of distinct items in each history.
    """
    ds = split.dataset
    starts = ds.offsets[users]
    lengths = ds.offsets[users + 1] - starts
    rows = np.repeat(np.arange(len(users), dtype=np.int64), lengths)
    # position of every interaction of the selected users inside ds.items
    within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths
    )
    items = ds.items[np.repeat(starts, lengths) + within]
    keys = np.sort(rows * (ds.n_items + 1) + items)
    if len(keys):
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    n_unique = np.bincount(keys // (ds.n_items + 1), minlength=len(users)).astype(np.int64)
    return keys, n_unique


def _in_sorted(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Boolean mask (shape of ``queries``): which queries occur in ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(queries.shape, dtype=bool)
    pos = np.searchsorted(sorted_keys, queries)
    np.minimum(pos, len(sorted_keys) - 1, out=pos)
    return sorted_keys[pos] == queries


def _first_new_per_row(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mask ``[U, M]``: ``valid`` entries whose value did not occur earlier in the same row."""
    order = np.argsort(values, axis=1, kind="stable")
    sorted_vals = np.take_along_axis(values, order, axis=1)
    repeat_sorted = np.zeros(values.shape, dtype=bool)
    repeat_sorted[:, 1:] = sorted_vals[:, 1:] == sorted_vals[:, :-1]
    repeat = np.empty_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    return valid & ~repeat


def _rejection(
    rows: np.ndarray,
    user_keys: np.ndarray,
    hist_keys: np.ndarray,
    n_items: int,
    num_negatives: int,
    out: np.ndarray,
) -> np.ndarray:
    """Fill ``out[rows]`` by rejection sampling; returns the rows left unfinished.

    Args:
        rows: int64 ``[R]`` rows (chunk-local user positions) to sample for.
        user_keys: uint64 ``[R]`` stream keys of those rows.
        hist_keys: sorted history keys of the chunk (see :func:`_histories`).
        out: int64 ``[U_chunk, num_negatives]`` written in place.
    """
    width = math.ceil(1.1 * num_negatives) + 8
    pending = np.arange(len(rows))
    for _ in range(_MAX_ROUNDS):
        if len(pending) == 0:
            break
        counters = np.arange(width, dtype=np.uint64)
        proposals = (
            (_hash32(user_keys[pending], counters) * np.uint64(n_items)) >> np.uint64(32)
        ).astype(np.int64) + 1
        prow = rows[pending]
        seen = _in_sorted(hist_keys, prow[:, None] * (n_items + 1) + proposals)
        accepted = _first_new_per_row(proposals, ~seen)
        done = accepted.sum(axis=1) >= num_negatives
        if done.any():
            acc = accepted[done]
            keep = acc & (np.cumsum(acc, axis=1) <= num_negatives)
            out[prow[done]] = proposals[done][keep].reshape(-1, num_negatives)
        pending = pending[~done]
        width *= 2
    return rows[pending]


def _exact(
    rows: np.ndarray,
    users: np.ndarray,
    seed: int,
    hist_keys: np.ndarray,
    n_items: int,
    num_negatives: int,
    out: np.ndarray,
) -> None:
    """Fill ``out[rows]`` with the ``num_negatives`` available items of smallest hash key."""
    all_items = np.arange(1, n_items + 1, dtype=np.int64)
    keys = _user_keys(seed, users[rows], _STREAM_EXACT)
    for row, key in zip(rows.tolist(), keys, strict=True):
        seen = _in_sorted(hist_keys, row * (n_items + 1) + all_items)
        available = all_items[~seen]
        item_keys = _hash32(key[None], available.astype(np.uint64))[0]
        pick = np.argsort(item_keys, kind="stable")[:num_negatives]
        out[row] = available[pick]


def sample_negatives(
    split: LeaveOneOutSplit,
    users: np.ndarray | list[int],
    num_negatives: int = 100,
    seed: int = 0,
) -> np.ndarray:
    """Sample never-interacted negatives per user, deterministically per ``(seed, user)``.

    Args:
        split: the split whose ``dataset`` defines the catalogue and each user's history.
        users: int ``[U]`` internal user ids (duplicates allowed; order is kept).
        num_negatives: negatives per user (``K``).
        seed: base seed; a user's negatives depend only on ``(seed, user)``.

    Returns:
        int64 ``[U, K]``: distinct item ids in ``1..n_items``, none in the user's sequence.
        Rows are in proposal order (not sorted).

    Raises:
        InsufficientNegativesError: a user has fewer than ``K`` never-seen items.
        ValueError: ``num_negatives < 0`` or a user id out of range.
    """
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    ds = split.dataset
    n_items = ds.n_items
    if num_negatives < 0:
        raise ValueError(f"num_negatives must be >= 0, got {num_negatives}")
    if len(users) and (users.min() < 0 or users.max() >= ds.n_users):
        raise ValueError(f"user ids must lie in 0..{ds.n_users - 1}")
    if n_items >= 2**32:
        raise ValueError("more than 2^32 items are not supported")
    result = np.zeros((len(users), num_negatives), dtype=np.int64)
    if num_negatives == 0 or len(users) == 0:
        return result
    n_exact = 0
    for start in range(0, len(users), _CHUNK_USERS):
        chunk = users[start : start + _CHUNK_USERS]
        hist_keys, n_unique = _histories(split, chunk)
        available = n_items - n_unique
        short = np.flatnonzero(available < num_negatives)
        if len(short):
            row = int(short[0])
            raise InsufficientNegativesError(
                f"user {int(chunk[row])} ({ds.user_ids[chunk[row]]!r}) has only "
                f"{int(available[row])} items it never interacted with, fewer than "
                f"num_negatives={num_negatives} ({len(short)} such users in this chunk); "
                "lower num_negatives or use the full protocol"
            )
        out = result[start : start + len(chunk)]
        exact_rows = np.flatnonzero(available < EXACT_FRACTION * n_items)
        rej_rows = np.flatnonzero(available >= EXACT_FRACTION * n_items)
        left = _rejection(
            rej_rows,
            _user_keys(seed, chunk[rej_rows], _STREAM_PROPOSAL),
            hist_keys,
            n_items,
            num_negatives,
            out,
        )
        exact_rows = np.concatenate([exact_rows, left])
        _exact(exact_rows, chunk, seed, hist_keys, n_items, num_negatives, out)
        n_exact += len(exact_rows)
    logger.debug(
        "sampled %d negatives for %d users (%d by the exact method)",
        num_negatives,
        len(users),
        n_exact,
    )
    return result
