"""Training losses over next-item targets, returned **per sequence**.

Every loss returns a ``[B]`` tensor whose sum is the batch loss (the mean over all target
positions in the batch). Per-sequence values are what the Rec-Denoiser estimators need when each
sequence draws its own mask. Target positions are those with ``pos_items != PAD``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from recdenoiser.data.dataset import PAD
from recdenoiser.models.embedding import gather_rows
from recdenoiser.registry import Registry

# (hidden [B, L, d], item table [N+1, d], pos_items [B, L], neg_items [B, L, K] | None) -> [B]
LossFn = Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor]
LOSSES: Registry[LossFn] = Registry("loss")
NEEDS_NEGATIVES = {
    "bce": True,
    "sampled_softmax": True,
    "softmax": False,
    "bpr": True,
    "top1": True,
}


def _per_sequence(token_loss: Tensor, target_mask: Tensor) -> Tensor:
    """``[B, L]`` token losses -> ``[B]`` sums normalised by the batch's number of targets."""
    weights = target_mask.to(token_loss.dtype)
    return (token_loss * weights).sum(-1) / weights.sum().clamp_min(1.0)


def _candidate_logits(
    hidden: Tensor, items: Tensor, pos_items: Tensor, neg_items: Tensor | None
) -> Tensor:
    """``[B, L, 1+K]`` scores of the positive (index 0) and the K sampled negatives."""
    assert neg_items is not None, "this loss needs sampled negatives"
    candidates = torch.cat([pos_items.unsqueeze(-1), neg_items], dim=-1)  # [B, L, 1+K]
    return (hidden.unsqueeze(2) * gather_rows(items, candidates)).sum(-1)


@LOSSES.register("bce")
def bce_loss(hidden: Tensor, items: Tensor, pos_items: Tensor, neg_items: Tensor | None) -> Tensor:
    """SASRec's binary cross-entropy: positive vs each sampled negative (mean over negatives)."""
    logits = _candidate_logits(hidden, items, pos_items, neg_items)
    token = F.softplus(-logits[..., 0]) + F.softplus(logits[..., 1:]).mean(-1)
    return _per_sequence(token, pos_items != PAD)


@LOSSES.register("sampled_softmax")
def sampled_softmax_loss(
    hidden: Tensor, items: Tensor, pos_items: Tensor, neg_items: Tensor | None
) -> Tensor:
    """Softmax cross-entropy over the positive and K sampled negatives."""
    logits = _candidate_logits(hidden, items, pos_items, neg_items)
    token = torch.logsumexp(logits, dim=-1) - logits[..., 0]
    return _per_sequence(token, pos_items != PAD)


@LOSSES.register("softmax")
def full_softmax_loss(
    hidden: Tensor, items: Tensor, pos_items: Tensor, neg_items: Tensor | None
) -> Tensor:
    """Softmax cross-entropy over all items (PAD excluded), computed on target positions only."""
    target_mask = pos_items != PAD
    rows = target_mask.nonzero(as_tuple=True)
    logits = hidden[rows] @ items.T  # [T, N+1]
    logits[:, PAD] = float("-inf")
    token_flat = F.cross_entropy(logits, pos_items[rows], reduction="none")  # [T]
    token = torch.zeros_like(pos_items, dtype=hidden.dtype)
    token[rows] = token_flat.to(hidden.dtype)
    return _per_sequence(token, target_mask)


@LOSSES.register("bpr")
def bpr_loss(hidden: Tensor, items: Tensor, pos_items: Tensor, neg_items: Tensor | None) -> Tensor:
    """Pairwise BPR (Rendle et al. 2009): ``-log sigmoid(r_pos - r_neg)``, mean over negatives.

    With one negative per position this is FPMC's S-BPR; GRU4Rec's BPR averages it over the
    sampled negatives the same way.
    """
    logits = _candidate_logits(hidden, items, pos_items, neg_items)
    token = F.softplus(logits[..., 1:] - logits[..., :1]).mean(-1)
    return _per_sequence(token, pos_items != PAD)


@LOSSES.register("top1")
def top1_loss(hidden: Tensor, items: Tensor, pos_items: Tensor, neg_items: Tensor | None) -> Tensor:
    """GRU4Rec's TOP1 (Hidasi et al. 2016): ``sigmoid(r_neg - r_pos) + sigmoid(r_neg^2)``, mean
    over the sampled negatives (the second term pushes negative scores towards zero)."""
    logits = _candidate_logits(hidden, items, pos_items, neg_items)
    neg = logits[..., 1:]
    token = (torch.sigmoid(neg - logits[..., :1]) + torch.sigmoid(neg.square())).mean(-1)
    return _per_sequence(token, pos_items != PAD)
