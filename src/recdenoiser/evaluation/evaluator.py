"""Leave-one-out evaluation of a sequential recommender, with per-user results.

Two protocols:

``sampled`` (SASRec / Rec-Denoiser papers)
    Each user's target is ranked against ``num_negatives`` items the user never interacted with
    (see :mod:`recdenoiser.evaluation.candidates`). Candidates are ``[target, neg_1..neg_K]``;
    the rank is the number of negatives scored ``>=`` the target (ties count against it), so a
    constant-score model gets rank ``K``.

``full``
    The target is ranked against every item ``1..n_items`` (column 0, PAD, is never a
    competitor). The rank is the number of other items scored ``>=`` the target. With
    ``exclude_history=True`` the items of the user's whole evaluation input (the full history,
    not only the last ``max_len`` items fed to the model) are removed from the competitors.
    The target itself is never removed: if it also occurs in the history (a repeat
    consumption), its own score is still the one being ranked. Users are scored in chunks of
    ``batch_size``; the rank is a comparison count, no sort.

Per-user values are kept (``EvalResult.per_user``) so that two runs can be compared with a
paired test (:func:`paired_test`) over the users they share.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recdenoiser.data.dataset import PAD
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.evaluation.candidates import EvaluationError, sample_negatives
from recdenoiser.evaluation.metrics import DEFAULT_KS, check_ks, mean_metrics, rank_metrics
from recdenoiser.models.batch import Batch, pad_left

logger = logging.getLogger(__name__)

Stage = Literal["valid", "test"]
EvalProtocol = Literal["sampled", "full"]


class Scorer(Protocol):
    """What the evaluator needs from a model (a ``torch.nn.Module`` in practice)."""

    training: bool

    def train(self, mode: bool = True) -> Any: ...

    def score_candidates(self, batch: Batch, candidates: Tensor) -> Tensor:
        """Scores ``[B, C]`` float of candidate items ``[B, C]`` int64."""
        ...

    def score_all(self, batch: Batch) -> Tensor:
        """Scores ``[B, n_items + 1]`` float of every item; column 0 (PAD) is meaningless."""
        ...


@dataclass
class EvalResult:
    """Mean and per-user metrics of one evaluation.

    Attributes:
        stage: ``"valid"`` or ``"test"``.
        protocol: ``"sampled"`` or ``"full"``.
        metrics: mean of every metric over the evaluated users.
        per_user: one row per evaluated user; columns ``user`` (internal id), ``raw_user``,
            ``target`` (internal item id), ``rank`` (0-based) and one column per metric.
        settings: the options the evaluation ran with (num_negatives, seed, ...).
    """

    stage: str
    protocol: str
    metrics: dict[str, float]
    per_user: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.per_user)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (means and settings, no per-user table)."""
        return {
            "stage": self.stage,
            "protocol": self.protocol,
            "n_users": self.n_users,
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "settings": dict(self.settings),
        }

    def format_table(self, digits: int = 4) -> str:
        """A readable table: one row per metric family, one column per cut-off, then MRR."""
        cut: dict[str, dict[int, float]] = {}
        other: dict[str, float] = {}
        for name, value in self.metrics.items():
            family, _, k = name.partition("@")
            if k.isdigit():
                cut.setdefault(family, {})[int(k)] = value
            else:
                other[name] = value
        title = f"{self.stage} / {self.protocol}"
        if self.protocol == "sampled" and "num_negatives" in self.settings:
            title += f" (1 target + {self.settings['num_negatives']} negatives)"
        lines = [f"{title}, {self.n_users} users"]
        ks = sorted({k for values in cut.values() for k in values})
        width = max(digits + 3, max((len(f"@{k}") for k in ks), default=0))
        label = max([len(f) for f in cut] + [len(n) for n in other] + [6])
        if ks:
            header = "metric".ljust(label) + "".join(f"  {f'@{k}':>{width}}" for k in ks)
            lines += [header, "-" * len(header)]
            for family, values in cut.items():
                cells = "".join(
                    f"  {values[k]:>{width}.{digits}f}" if k in values else "  " + " " * width
                    for k in ks
                )
                lines.append(family.ljust(label) + cells)
        for name, value in other.items():
            lines.append(name.ljust(label) + f"  {value:>{width}.{digits}f}")
        return "\n".join(lines)


def _select_users(split: LeaveOneOutSplit, max_users: int | None, seed: int) -> np.ndarray:
    """The evaluated users: all ``split.eval_users`` or a seeded subset of ``max_users``."""
    users = np.asarray(split.eval_users, dtype=np.int64)
    if max_users is not None:
        if max_users < 1:
            raise ValueError(f"max_users must be >= 1 or None, got {max_users}")
        if max_users < len(users):
            rng = np.random.default_rng(seed)
            users = np.sort(rng.choice(users, size=max_users, replace=False))
    return users


def _make_batch(
    split: LeaveOneOutSplit, users: np.ndarray, stage: Stage, max_len: int
) -> tuple[Batch, list[np.ndarray]]:
    """The model input of ``users`` and their full (untruncated) evaluation histories.

    Returns:
        batch: ``item_seq`` ``[B, max_len]`` left-padded, ``users`` ``[B]``, ``time_seq``
            ``[B, max_len]`` (0 at padding) when the dataset has timestamps.
        histories: the ``B`` full input sequences (for history exclusion).
    """
    histories = [split.eval_input(int(u), stage) for u in users]
    item_seq = torch.from_numpy(pad_left(histories, max_len))
    time_seq = None
    if split.dataset.timestamps is not None:
        times = [split.eval_input_times(int(u), stage) for u in users]
        time_seq = torch.from_numpy(
            pad_left([t for t in times if t is not None], max_len, dtype=np.int64)
        )
    batch = Batch(item_seq=item_seq, users=torch.from_numpy(users.copy()), time_seq=time_seq)
    return batch, histories


def _check_scores(scores: Tensor, shape: tuple[int, ...], what: str) -> Tensor:
    if not isinstance(scores, Tensor) or tuple(scores.shape) != shape:
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise EvaluationError(f"model.{what} returned {got}, expected a tensor of shape {shape}")
    return scores


def _sampled_ranks(model: Scorer, batch: Batch, candidates: Tensor) -> tuple[Tensor, Tensor]:
    """Ranks ``[B]`` of column 0 of ``candidates`` ``[B, C]`` and a NaN-target mask ``[B]``."""
    scores = _check_scores(
        model.score_candidates(batch, candidates), tuple(candidates.shape), "score_candidates"
    ).float()
    target = scores[:, :1]
    ranks = (scores[:, 1:] >= target).sum(dim=1)
    return ranks, torch.isnan(target[:, 0])


def _full_ranks(
    model: Scorer,
    batch: Batch,
    targets: Tensor,
    histories: list[np.ndarray],
    n_items: int,
    exclude_history: bool,
) -> tuple[Tensor, Tensor]:
    """Ranks ``[B]`` of ``targets`` ``[B]`` among items ``1..n_items``; NaN-target mask ``[B]``."""
    b = len(batch)
    raw = _check_scores(model.score_all(batch), (b, n_items + 1), "score_all")
    scores = raw.float()  # read only: the model's tensor is never modified
    rows = torch.arange(b, device=scores.device)
    target_scores = scores[rows, targets].unsqueeze(1)  # [B, 1]
    # count every column scoring >= the target (int32 sums are about twice as fast), then take
    # away what does not compete: the target itself, PAD (column 0) and excluded history items
    ranks = (scores >= target_scores).sum(dim=1, dtype=torch.int32).long()
    ranks -= 1 + (scores[:, :1] >= target_scores).squeeze(1).long()
    if exclude_history:
        longest = max((len(h) for h in histories), default=0)
        if longest:
            hist = torch.from_numpy(pad_left(histories, longest)).to(scores.device)
            hist, _ = hist.sort(dim=1)
            distinct = torch.ones_like(hist, dtype=torch.bool)
            distinct[:, 1:] = hist[:, 1:] != hist[:, :-1]  # each history item counted once
            competes = distinct & (hist != PAD) & (hist != targets.unsqueeze(1))
            beaten = (scores.gather(1, hist) >= target_scores) & competes
            ranks -= beaten.sum(dim=1)
    # a NaN target compares False everywhere; the caller gives it the worst rank
    return ranks, torch.isnan(target_scores.squeeze(1))


def evaluate(
    model: Scorer,
    split: LeaveOneOutSplit,
    *,
    stage: Stage,
    protocol: EvalProtocol,
    max_len: int,
    num_negatives: int = 100,
    ks: Sequence[int] = DEFAULT_KS,
    seed: int = 0,
    max_users: int | None = None,
    exclude_history: bool = True,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
) -> EvalResult:
    """Rank each evaluated user's ``stage`` target and compute HR/NDCG@k and MRR.

    Args:
        model: a module with ``score_candidates`` / ``score_all`` (see :class:`Scorer`), already
            on ``device``. It is put in eval mode and its previous mode restored afterwards.
        split: leave-one-out split; ``split.eval_users`` are evaluated.
        stage: ``"valid"`` (input = training sequence) or ``"test"`` (input also holds the
            validation item).
        protocol: ``"sampled"`` (target + ``num_negatives`` negatives) or ``"full"`` (all items).
        max_len: model input length; histories are truncated to their last ``max_len`` items.
        num_negatives: negatives per user for the sampled protocol (same for both stages).
        ks: cut-offs of ``hit@k`` and ``ndcg@k``.
        seed: seeds the negatives (per user) and the ``max_users`` subset.
        max_users: evaluate a seeded random subset of this many users (None = all).
        exclude_history: full protocol only: drop the user's input items from the competitors
            (never the target itself).
        batch_size: users scored per forward pass; results do not depend on it.
        device: where batches are sent.

    Returns:
        An :class:`EvalResult`. A user whose target score is NaN gets the worst rank (logged).
    """
    if stage not in ("valid", "test"):
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    if protocol not in ("sampled", "full"):
        raise ValueError(f"protocol must be 'sampled' or 'full', got {protocol!r}")
    if max_len < 1 or batch_size < 1:
        raise ValueError("max_len and batch_size must be >= 1")
    ks = check_ks(ks)
    users = _select_users(split, max_users, seed)
    if len(users) == 0:
        raise EvaluationError("no user can be evaluated (every sequence is shorter than 3)")
    targets = split.target(stage)[users]
    n_items = split.n_items
    negatives = None
    if protocol == "sampled":
        negatives = sample_negatives(split, users, num_negatives, seed)
        worst = num_negatives
    else:
        worst = n_items - 1

    ranks = np.empty(len(users), dtype=np.int64)
    n_nan = 0
    was_training = bool(model.training)
    model.train(False)
    try:
        with torch.inference_mode():
            for start in range(0, len(users), batch_size):
                sl = slice(start, start + batch_size)
                batch, histories = _make_batch(split, users[sl], stage, max_len)
                batch = batch.to(device)
                chunk_targets = torch.from_numpy(targets[sl]).to(device)
                if negatives is not None:
                    cand = torch.from_numpy(
                        np.concatenate([targets[sl, None], negatives[sl]], axis=1)
                    ).to(device)
                    chunk_ranks, nan = _sampled_ranks(model, batch, cand)
                else:
                    chunk_ranks, nan = _full_ranks(
                        model, batch, chunk_targets, histories, n_items, exclude_history
                    )
                chunk_ranks = torch.where(nan, torch.full_like(chunk_ranks, worst), chunk_ranks)
                n_nan += int(nan.sum())
                ranks[sl] = chunk_ranks.cpu().numpy()
    finally:
        model.train(was_training)
    if n_nan:
        logger.warning(
            "%d of %d users had a NaN target score (given the worst rank)", n_nan, len(users)
        )

    per_metric = rank_metrics(ranks, ks)
    per_user = pd.DataFrame(
        {
            "user": users,
            "raw_user": split.dataset.user_ids[users],
            "target": targets,
            "rank": ranks,
            **per_metric,
        }
    )
    settings: dict[str, Any] = {
        "max_len": max_len,
        "ks": list(ks),
        "seed": seed,
        "max_users": max_users,
    }
    if protocol == "sampled":
        settings["num_negatives"] = num_negatives
    else:
        settings["exclude_history"] = exclude_history
    result = EvalResult(
        stage=stage,
        protocol=protocol,
        metrics=mean_metrics(per_metric),
        per_user=per_user,
        settings=settings,
    )
    logger.info(
        "%s/%s on %d users: %s",
        stage,
        protocol,
        len(users),
        ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()),
    )
    return result


# ------------------------------------------------------------------------------ per-user I/O
def save_per_user(result: EvalResult, path: str | Path) -> Path:
    """Write ``result.per_user`` as CSV, or Parquet when ``path`` ends in ``.parquet``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        result.per_user.to_parquet(path, index=False)
    else:
        result.per_user.to_csv(path, index=False)
    return path


def load_per_user(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`save_per_user`."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"raw_user": str})


# ---------------------------------------------------------------------------- paired tests
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)`` for ``a, b > 0`` and ``0 <= x <= 1``."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must lie in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value ``P(|T| >= |t|)`` of Student's t with ``df`` degrees of freedom."""
    if math.isnan(t) or df <= 0:
        return float("nan")
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` ``[n]`` with ties given their average rank."""
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    new_group = np.concatenate([[True], sorted_vals[1:] != sorted_vals[:-1]])
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], len(values))
    avg = (starts + ends + 1) / 2.0  # mean of 1-based positions start+1..end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = avg[group]
    return ranks


def _wilcoxon(diff: np.ndarray) -> dict[str, float]:
    """Wilcoxon signed-rank test, normal approximation with tie correction (zeros dropped)."""
    d = diff[diff != 0]
    n = len(d)
    if n == 0:
        return {"wilcoxon_w": float("nan"), "wilcoxon_z": float("nan"), "wilcoxon_p": 1.0}
    ranks = _average_ranks(np.abs(d))
    w_plus = float(ranks[d > 0].sum())
    mean = n * (n + 1) / 4.0
    _, counts = np.unique(np.abs(d), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24.0 - float((counts**3 - counts).sum()) / 48.0
    if var <= 0:
        return {"wilcoxon_w": w_plus, "wilcoxon_z": float("nan"), "wilcoxon_p": float("nan")}
    z = (w_plus - mean) / math.sqrt(var)
    return {"wilcoxon_w": w_plus, "wilcoxon_z": z, "wilcoxon_p": math.erfc(abs(z) / math.sqrt(2))}


def paired_test(
    a: EvalResult | pd.DataFrame, b: EvalResult | pd.DataFrame, metric: str
) -> dict[str, float | int | str]:
    """Paired comparison of two runs on ``metric`` over the users both evaluated.

    The t-test uses the exact Student t distribution (regularized incomplete beta via
    ``math.lgamma`` and a continued fraction). The Wilcoxon signed-rank test uses the normal
    approximation (zero differences dropped, tie-corrected variance, no continuity correction),
    which is accurate for the thousands of users of a real evaluation but rough below ~20.

    Args:
        a, b: results or per-user tables with columns ``user`` and ``metric``.
        metric: e.g. ``"ndcg@10"``.

    Returns:
        ``metric``, ``n`` (common users), ``mean_a``, ``mean_b``, ``mean_diff`` (a - b),
        ``std_diff`` (sample std), ``t``, ``df``, ``p_value`` (two-sided t-test),
        ``wilcoxon_w`` (sum of ranks of positive differences), ``wilcoxon_z``, ``wilcoxon_p``.
    """
    ta = a.per_user if isinstance(a, EvalResult) else a
    tb = b.per_user if isinstance(b, EvalResult) else b
    for name, table in (("a", ta), ("b", tb)):
        missing = {"user", metric} - set(table.columns)
        if missing:
            raise KeyError(f"per-user table {name} lacks column(s) {sorted(missing)}")
    if ta["user"].duplicated().any() or tb["user"].duplicated().any():
        raise ValueError("per-user tables must have one row per user")
    merged = ta[["user", metric]].merge(tb[["user", metric]], on="user", suffixes=("_a", "_b"))
    xa = merged[f"{metric}_a"].to_numpy(dtype=np.float64)
    xb = merged[f"{metric}_b"].to_numpy(dtype=np.float64)
    n = len(merged)
    if n < len(ta) or n < len(tb):
        logger.info("paired test on %d common users (a has %d, b has %d)", n, len(ta), len(tb))
    diff = xa - xb
    nan = float("nan")
    mean_diff = float(diff.mean()) if n else nan
    std_diff = float(diff.std(ddof=1)) if n > 1 else nan
    if n < 2:
        t, p = nan, nan
    elif std_diff == 0.0:
        t = 0.0 if mean_diff == 0.0 else math.copysign(math.inf, mean_diff)
        p = 1.0 if mean_diff == 0.0 else 0.0
    else:
        t = mean_diff / (std_diff / math.sqrt(n))
        p = student_t_two_sided_p(t, n - 1)
    return {
        "metric": metric,
        "n": n,
        "mean_a": float(xa.mean()) if n else nan,
        "mean_b": float(xb.mean()) if n else nan,
        "mean_diff": mean_diff,
        "std_diff": std_diff,
        "t": t,
        "df": n - 1,
        "p_value": p,
        **_wilcoxon(diff),
    }
