"""Which items of a history the learned masks prune, and how well that finds injected noise.

The keep score of the item at key position ``v`` is the mask's keep probability
``sigmoid(logit[l, u, v])`` averaged over the layers ``l`` and over the queries ``u`` that can
attend to ``v`` (causal, not padding). ``1 - keep`` is the prune score. With positional masks the
score depends only on the position; with input-dependent masks it also depends on the items (and,
for SSE-PT, on the user). Histories are scored as the model sees them when it recommends
(:meth:`~recdenoiser.models.base.SelfAttentiveRecommender.inference_input`: BERT4Rec's appended
``[mask]`` included, as a query, but not reported).

On training data corrupted by :func:`recdenoiser.data.inject_noise`, :func:`noise_detection`
ranks every training item by its prune score and compares with the ground truth: ROC-AUC (0.5 is
chance), per-user precision@k of the most-pruned items, and R-precision over all items (the
fraction of injected items among the ``n_injected`` most-pruned items).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from recdenoiser.data.dataset import PAD
from recdenoiser.data.noise import NoiseRecord
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.denoiser.masks import AttentionMasks
from recdenoiser.denoiser.objective import usable_entries
from recdenoiser.errors import RecDenoiserError
from recdenoiser.models.base import SelfAttentiveRecommender
from recdenoiser.models.batch import Batch, pad_left


def _masks_of(model: SelfAttentiveRecommender) -> AttentionMasks:
    masks = model.mask_provider
    if not isinstance(masks, AttentionMasks):
        raise RecDenoiserError(
            "this model has no learned attention masks (train it with denoiser.enabled=true "
            "and denoiser.masks=true)"
        )
    return masks


@torch.inference_mode()
def item_keep_scores(model: SelfAttentiveRecommender, batch: Batch) -> Tensor:
    """``[B, L]`` keep score of each history position (NaN at padding).

    ``batch`` holds histories; the scores are computed on ``model.inference_input(batch)`` and
    those of the tokens it appends (BERT4Rec's ``[mask]``) are left out, so column ``j`` is the
    score of ``batch.item_seq[:, j]`` (NaN where the model does not see that column).
    """
    masks = _masks_of(model)
    was_training = model.training
    model.eval()
    try:
        width = batch.item_seq.shape[1]
        appended = model.appended_at_inference
        batch = model.inference_input(batch)
        padding_mask = batch.padding_mask
        allowed = model.allowed_attention(padding_mask)
        usable = usable_entries(allowed, padding_mask).to(torch.float32)  # [B, L, L]
        probs = masks.keep_probabilities(model.embed(batch)).float()  # [layers, B or 1, L, L]
        summed = (probs * usable.unsqueeze(0)).sum(dim=(0, 2))  # [B, L] over layers, queries
        counts = usable.sum(1) * probs.shape[0]  # [B, L]
        scores = summed / counts.clamp_min(1.0)
        scores = scores.masked_fill(~padding_mask, float("nan"))
        seen = scores[:, : scores.shape[1] - appended]  # the history's own columns
        unseen = torch.full(
            (seen.shape[0], width - seen.shape[1]), float("nan"), device=seen.device
        )  # oldest columns dropped to make room for appended tokens
        return torch.cat([unseen, seen], dim=1)
    finally:
        model.train(was_training)


def seen_length(model: SelfAttentiveRecommender, max_len: int) -> int:
    """How many of the newest history items the model sees when it recommends."""
    return max_len - model.appended_at_inference


def user_history_report(
    model: SelfAttentiveRecommender,
    history: np.ndarray,
    item_ids: np.ndarray,
    max_len: int,
    *,
    user: int,
) -> pd.DataFrame:
    """One row per item of ``history`` the model sees (internal ids, oldest first).

    ``user`` is the internal user index (models with user embeddings, such as SSE-PT, use it).
    """
    history = np.asarray(history, dtype=np.int64)[-seen_length(model, max_len) :]
    if len(history) == 0:
        raise RecDenoiserError("the history is empty")
    device = next(model.parameters()).device
    batch = Batch(
        item_seq=torch.from_numpy(pad_left([history], max_len)).to(device),
        users=torch.full((1,), user, dtype=torch.long, device=device),
    )
    keep = item_keep_scores(model, batch)[0, -len(history) :].cpu().numpy()
    return pd.DataFrame(
        {
            "position": np.arange(len(history)),
            "item": [str(item_ids[i]) for i in history],
            "keep": keep,
            "pruned": keep <= 0.5,
        }
    )


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties get half credit)."""
    labels = labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass
class DetectionResult:
    roc_auc: float
    r_precision: float
    precision_at: dict[int, float]
    n_items: int
    n_injected: int
    per_item: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {
            "roc_auc": self.roc_auc,
            "r_precision": self.r_precision,
            "n_items": self.n_items,
            "n_injected": self.n_injected,
            "injected_fraction": self.n_injected / max(self.n_items, 1),
        }
        out.update({f"precision@{k}": v for k, v in self.precision_at.items()})
        return out


def noise_detection(
    model: SelfAttentiveRecommender,
    split: LeaveOneOutSplit,
    noise: NoiseRecord,
    max_len: int,
    ks: tuple[int, ...] = (1, 3, 5),
    batch_size: int = 512,
    users: np.ndarray | None = None,
) -> DetectionResult:
    """Score every training item (the last ``max_len`` of each user) and compare with ``noise``."""
    if noise.replaced.shape != split.train_items.shape:
        raise RecDenoiserError("the noise record does not belong to this split")
    device = next(model.parameters()).device
    lengths = np.diff(split.train_offsets)
    if users is None:
        users = np.flatnonzero(lengths > 0)
    rows: list[pd.DataFrame] = []
    seen = seen_length(model, max_len)
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        seqs = [split.train_sequence(int(u))[-seen:] for u in chunk]
        batch = Batch(
            item_seq=torch.from_numpy(pad_left(seqs, max_len)).to(device),
            users=torch.from_numpy(chunk).to(device),
        )
        keep = item_keep_scores(model, batch).cpu().numpy()
        for row, u in enumerate(chunk):
            n = len(seqs[row])
            lo = split.train_offsets[u + 1] - n
            idx = np.arange(lo, split.train_offsets[u + 1])
            rows.append(
                pd.DataFrame(
                    {
                        "user": int(u),
                        "position": idx - split.train_offsets[u],
                        "item": split.train_items[idx],
                        "keep": keep[row, -n:],
                        "injected": noise.replaced[idx],
                    }
                )
            )
    per_item = pd.concat(rows, ignore_index=True)
    per_item = per_item[per_item["item"] != PAD]
    prune = 1.0 - per_item["keep"].to_numpy()
    labels = per_item["injected"].to_numpy(dtype=bool)
    n_injected = int(labels.sum())
    order = np.argsort(-prune, kind="stable")
    r_precision = float(labels[order[:n_injected]].mean()) if n_injected else float("nan")
    precision_at: dict[int, float] = {}
    ranked = per_item.assign(prune=prune).sort_values(["user", "prune"], ascending=[True, False])
    for k in ks:
        top = ranked.groupby("user", sort=False).head(k)
        sizes = per_item.groupby("user").size()
        eligible = sizes[sizes >= k].index
        top = top[top["user"].isin(eligible)]
        precision_at[k] = float(top["injected"].mean()) if len(top) else float("nan")
    return DetectionResult(
        roc_auc=roc_auc(prune, labels),
        r_precision=r_precision,
        precision_at=precision_at,
        n_items=len(per_item),
        n_injected=n_injected,
        per_item=per_item.reset_index(drop=True),
    )
