"""SSE-PT (Wu, Li, Hsieh & Sharpnack, RecSys 2020): a personalised SASRec regularised with
stochastic shared embeddings (SSE).

What differs from SASRec:

* every input position is ``[item embedding (d_i) ; user embedding (d_u)]`` (times
  ``sqrt(d)``) plus a position embedding, with ``d = d_i + d_u = hidden_size`` the width of the
  blocks (``user_hidden_size`` is ``d_u``; by default half of ``hidden_size``);
* item ``i`` is scored for user ``u`` against ``[e_i ; e_u]``: ``h . [e_i ; e_u]``. So that the
  shared scoring and losses apply unchanged, :meth:`encode` folds the user part into one extra
  coordinate, ``[h_{:d_i} ; h_{d_i:} . e_u]``, and :meth:`item_table` is ``[E ; 1]``; the dot
  products are the same;
* SSE during training (:meth:`training_batch`, run by the data pipeline): the user id is
  replaced by a uniformly random user with probability ``sse_prob_user`` and each input item by
  a uniformly random item with probability ``sse_prob_item`` (targets and the users whose
  histories exclude negatives are unchanged). Evaluation never replaces anything.

The paper's ML-1M setting is ``d_i = d_u = 50`` (``hidden_size: 100``), 2 blocks, 1 head,
dropout 0.2, max length 200. SSE probabilities here are *replacement* probabilities (the
reference code's thresholds are keep probabilities); the defaults 0.92 (users) and 0.1 (items)
are not verified against the paper and should be tuned.

Departures: the replaced user is also the one whose embedding scores the output (the batch is
corrupted once, consistently); positions count from the end; padding is excluded from attention.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor, nn

from recdenoiser.config import ModelConfig
from recdenoiser.data.dataset import PAD
from recdenoiser.errors import ConfigError
from recdenoiser.models.base import MODELS, SelfAttentiveRecommender
from recdenoiser.models.batch import Batch
from recdenoiser.models.embedding import SequenceEmbedding, gather_rows, positions_from_end


def user_width(config: ModelConfig) -> int:
    d_u = config.user_hidden_size or config.hidden_size // 2
    if not 0 < d_u < config.hidden_size:
        raise ConfigError(
            f"ssept: model.user_hidden_size ({d_u}) must be positive and smaller than "
            f"model.hidden_size ({config.hidden_size}), which holds item and user parts"
        )
    return d_u


class PersonalizedEmbedding(SequenceEmbedding):
    """``[item (d_i) ; user (d_u)] * sqrt(d) + position (d)``, dropout, padding zeroed."""

    def __init__(
        self, n_items: int, n_users: int, hidden_size: int, user_size: int, max_len: int, p: float
    ):
        super().__init__(n_items, hidden_size, max_len, p)
        self.items = nn.Embedding(n_items + 1, hidden_size - user_size, padding_idx=PAD)
        self.users = nn.Embedding(n_users, user_size)

    def personalized(self, item_seq: Tensor, users: Tensor, padding_mask: Tensor) -> Tensor:
        if item_seq.shape[1] > self.max_len:
            raise ValueError(f"sequence length {item_seq.shape[1]} exceeds max_len {self.max_len}")
        items = gather_rows(self.items.weight, item_seq)
        user = gather_rows(self.users.weight, users).unsqueeze(1).expand(-1, items.shape[1], -1)
        x = torch.cat([items, user], dim=-1) * math.sqrt(self.hidden_size)
        x = x + gather_rows(self.positions.weight, positions_from_end(padding_mask))
        x = self.dropout(x)
        return x * padding_mask.unsqueeze(-1).to(x.dtype)


@MODELS.register("ssept")
class SSEPT(SelfAttentiveRecommender):
    uses_user_ids = True
    causal = True
    embedding: PersonalizedEmbedding

    def __init__(self, n_items: int, max_len: int, config: ModelConfig, n_users: int | None = None):
        if n_users is None or n_users < 1:
            raise ConfigError("ssept needs the number of users (build it with n_users=...)")
        self.user_size = user_width(config)
        super().__init__(n_items, max_len, config, n_users)

    def build_embedding(self, dropout: float) -> SequenceEmbedding:
        assert self.n_users is not None
        return PersonalizedEmbedding(
            self.n_items,
            self.n_users,
            self.config.hidden_size,
            self.user_size,
            self.max_len,
            dropout,
        )

    def embed(self, batch: Batch) -> Tensor:
        return self.embedding.personalized(batch.item_seq, batch.users, batch.padding_mask)

    def encode(self, batch: Batch) -> Tensor:
        hidden = super().encode(batch)  # [B, L, d]
        d_i = self.config.hidden_size - self.user_size
        user = gather_rows(self.embedding.users.weight, batch.users).unsqueeze(1)  # [B, 1, d_u]
        user_score = (hidden[..., d_i:] * user).sum(-1, keepdim=True)
        return torch.cat([hidden[..., :d_i], user_score], dim=-1)  # [B, L, d_i + 1]

    def item_table(self) -> Tensor:
        items = self.embedding.items.weight
        return torch.cat([items, items.new_ones(items.shape[0], 1)], dim=-1)

    def training_batch(self, batch: Batch, generator: torch.Generator) -> Batch:
        """Stochastic shared embeddings: replace users and input items at random."""
        assert self.n_users is not None
        cfg = self.config
        users = batch.users
        swap_user = torch.rand(users.shape, generator=generator) < cfg.sse_prob_user
        random_users = torch.randint(0, self.n_users, users.shape, generator=generator)
        items = batch.item_seq
        swap_item = (torch.rand(items.shape, generator=generator) < cfg.sse_prob_item) & (
            items != PAD
        )
        random_items = torch.randint(1, self.n_items + 1, items.shape, generator=generator)
        return replace(
            batch,
            users=torch.where(swap_user, random_users, users),
            item_seq=torch.where(swap_item, random_items, items),
        )
