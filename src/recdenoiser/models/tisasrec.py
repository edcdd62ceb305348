"""TiSASRec (Li, Wang & McAuley, WSDM 2020): time-interval-aware causal self-attention.

What differs from SASRec:

* the input is the item embedding alone (times ``sqrt(d)``); absolute positions enter the
  attention instead, through separate key and value tables ``P^K``, ``P^V``;
* for every pair of positions the user's time interval ``r_ij`` (see :func:`interval_matrix`)
  selects key and value embeddings ``R^K[r_ij]``, ``R^V[r_ij]`` (relation-aware attention)::

      score_ij = q_i . (k_j + P^K_j + R^K_ij) / sqrt(d_h)
      out_i    = sum_j a_ij (v_j + P^V_j + R^V_ij)

  computed without ``[B, L, L, d]`` tensors: ``q_i . R^K_ij`` is gathered from ``q R^K^T``
  (``[B, H, L, k+1]``) and ``sum_j a_ij R^V_ij`` sums the weights per interval bucket first.

The Rec-Denoiser ``keep`` mask multiplies the attention weights after the softmax, exactly as in
:meth:`MultiHeadSelfAttention.explicit`, so the denoiser plugs in unchanged; the normaliser
(softmax or 1.5-entmax) is the shared :meth:`MultiHeadSelfAttention.normalize`.

Departures from the paper/reference code: the personal scale (the smallest non-zero interval) is
taken over the model's input window (the last ``max_len`` items) rather than the user's whole
training sequence, so a batch is all the model needs; positions count from the end of the
sequence; ``P^K`` is the shared embedding's position table; the blocks are the standard pre-norm
(or post-norm) blocks of this package.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from recdenoiser.config import ModelConfig
from recdenoiser.errors import ConfigError
from recdenoiser.models.attention import MultiHeadSelfAttention, Normalizer
from recdenoiser.models.base import MODELS, SelfAttentiveRecommender
from recdenoiser.models.batch import Batch
from recdenoiser.models.blocks import TransformerBlock
from recdenoiser.models.dropout import Dropout, fast_dropout
from recdenoiser.models.embedding import gather_rows, positions_from_end

NO_TIMESTAMPS = "tisasrec needs timestamps; use e.g. the beauty-time dataset"


def interval_matrix(time_seq: Tensor, padding_mask: Tensor, span: int) -> Tensor:
    """``[B, L, L]`` int64 personalised time intervals.

    ``r_ij = min(span, round(|t_i - t_j| / s_u))`` where ``s_u`` is the smallest non-zero
    interval between two real items of the sequence (1 when all its times are equal). Entries
    that involve padding are 0 (they are never attended to).
    """
    t = time_seq.to(torch.float64)
    diff = (t.unsqueeze(2) - t.unsqueeze(1)).abs()
    pair = padding_mask.unsqueeze(2) & padding_mask.unsqueeze(1)
    nonzero = torch.where(pair & (diff > 0), diff, torch.full_like(diff, math.inf))
    scale = nonzero.flatten(1).min(1).values
    scale = torch.where(torch.isinf(scale), torch.ones_like(scale), scale)
    intervals = torch.round(diff / scale.view(-1, 1, 1)).clamp_max(span).long()
    return intervals.masked_fill(~pair, 0)


class TimeIntervalAttention(MultiHeadSelfAttention):
    """Relation-aware attention; the relation embeddings of the batch are set by the model."""

    def __init__(
        self, hidden_size: int, num_heads: int, dropout: float, normalizer: Normalizer = "softmax"
    ):
        super().__init__(hidden_size, num_heads, dropout, fused=False, normalizer=normalizer)
        # (P^K [B, L, d], P^V [B, L, d], intervals [B, L, L], R^K [k+1, d], R^V [k+1, d])
        self.relations: tuple[Tensor, Tensor, Tensor, Tensor, Tensor] | None = None

    def forward(
        self,
        x: Tensor,
        allowed: Tensor,
        keep: Tensor | None = None,
        explicit: bool = False,
        last_only: bool = False,
        kv: Tensor | None = None,
    ) -> Tensor:
        if last_only or kv is not None:
            raise NotImplementedError("time-interval attention: all positions, one input")
        if self.relations is None:
            raise RuntimeError(
                "TimeIntervalAttention needs the batch's relations (set by TiSASRec)"
            )
        pos_k, pos_v, intervals, table_k, table_v = self.relations
        b, length, d = x.shape
        h, dh = self.num_heads, self.head_dim

        def heads(t: Tensor) -> Tensor:  # [B, L, d] -> [B, H, L, d_h]
            return t.view(b, length, h, dh).transpose(1, 2)

        q, k, v = (heads(t) for t in self.qkv(x).split(d, dim=-1))
        k = k + heads(pos_k)
        v = v + heads(pos_v)
        rk = table_k.view(-1, h, dh).transpose(0, 1)  # [H, k+1, d_h]
        rv = table_v.view(-1, h, dh).transpose(0, 1)
        index = intervals.unsqueeze(1).expand(b, h, length, length)
        scores = q @ k.transpose(-2, -1) + (q @ rk.transpose(-2, -1)).gather(-1, index)
        weights = self.normalize(scores / math.sqrt(dh), allowed.unsqueeze(1))
        if keep is not None:
            weights = weights * keep.unsqueeze(1).to(weights.dtype)  # shared by all heads
        p_drop = self.dropout if self.training else 0.0
        weights = fast_dropout(weights, p_drop, p_drop > 0)
        per_interval = weights.new_zeros(b, h, length, rv.shape[1]).scatter_add(-1, index, weights)
        ctx = weights @ v + per_interval @ rv
        return self.out(ctx.transpose(1, 2).reshape(b, length, d))


@MODELS.register("tisasrec")
class TiSASRec(SelfAttentiveRecommender):
    causal = True
    needs_timestamps: ClassVar[bool] = True

    def __init__(self, n_items: int, max_len: int, config: ModelConfig, n_users: int | None = None):
        super().__init__(n_items, max_len, config, n_users)
        d = config.hidden_size
        span = config.time_span
        self.value_positions = nn.Embedding(max_len + 1, d, padding_idx=0)
        self.interval_keys = nn.Embedding(span + 1, d)
        self.interval_values = nn.Embedding(span + 1, d)
        self.relation_dropout = Dropout(float(config.dropout))
        self.reset_parameters()
        with torch.no_grad():
            self.value_positions.weight[0].zero_()

    @classmethod
    def check_config(cls, config: ModelConfig, max_len: int | None = None) -> None:
        super().check_config(config, max_len)
        if config.norm == "sasrec":
            raise ConfigError("tisasrec supports model.norm 'pre' or 'post', not 'sasrec'")

    def build_block(self, dropout: float) -> TransformerBlock:
        block = super().build_block(dropout)
        block.attention = TimeIntervalAttention(
            self.config.hidden_size, self.config.num_heads, dropout, self.attention_normalizer
        )
        return block

    def embed(self, batch: Batch) -> Tensor:
        """Item embeddings only: positions enter the attention (``P^K``, ``P^V``)."""
        emb = self.embedding
        x = gather_rows(emb.items.weight, batch.item_seq) * math.sqrt(emb.hidden_size)
        return emb.dropout(x) * batch.padding_mask.unsqueeze(-1).to(x.dtype)

    def encode(self, batch: Batch) -> Tensor:
        if batch.time_seq is None:
            raise ConfigError(NO_TIMESTAMPS)
        if batch.item_seq.shape[1] > self.max_len:
            raise ValueError(f"sequence length {batch.item_seq.shape[1]} exceeds {self.max_len}")
        padding_mask = batch.padding_mask
        positions = positions_from_end(padding_mask)
        drop = self.relation_dropout
        relations = (
            drop(gather_rows(self.embedding.positions.weight, positions)),
            drop(gather_rows(self.value_positions.weight, positions)),
            interval_matrix(batch.time_seq, padding_mask, self.config.time_span),
            drop(self.interval_keys.weight),
            drop(self.interval_values.weight),
        )
        attentions = [block.attention for block in self.encoder.blocks]
        for attention in attentions:
            attention.relations = relations  # type: ignore[union-attr]
        try:
            return super().encode(batch)
        finally:
            for attention in attentions:
                attention.relations = None  # type: ignore[union-attr]
