"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional encoder trained with the Cloze task.

What differs from the shared :class:`SelfAttentiveRecommender`:

* attention is bidirectional (``causal = False``);
* the input table has one extra row, the ``[mask]`` token ``n_items + 1``; it is never scored
  (the inherited :meth:`item_table` stops at ``n_items``, so neither PAD nor ``[mask]`` can be
  a target of the loss or a recommendation beyond the usual PAD column);
* training (:meth:`training_batch`, run by the data pipeline on the *whole* training sequence):
  a fraction ``mask_prob`` of each sequence's items (at least one) is replaced by ``[mask]``,
  the targets are the original items at the masked positions and PAD elsewhere;
* inference (:meth:`inference_input`, :meth:`user_vector`): ``[mask]`` is appended after the
  history (the oldest item is dropped when the history already fills ``max_len``) and its hidden
  state scores the next item;
* the output head ``GELU(h W + b)`` of the paper is applied to the encoder's output and the
  output item vectors are the (shared) input item embeddings; the FFN is ``4d`` wide.

The loss, GELU activation and post-norm blocks come from the configuration (the packaged
``bert4rec-*.yaml`` files use ``loss: softmax``, ``activation: gelu``, ``norm: post``).

Departures from the paper/reference code: no output bias ``b^O``; a masked item is always
replaced by ``[mask]`` (no 10% random / 10% unchanged); no extra training samples that mask
only the last item; positions count from the end of the sequence, like every model here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from recdenoiser.config import ModelConfig
from recdenoiser.data.dataset import PAD
from recdenoiser.models.base import MODELS, SelfAttentiveRecommender
from recdenoiser.models.batch import Batch


@MODELS.register("bert4rec")
class BERT4Rec(SelfAttentiveRecommender):
    causal = False
    extra_tokens = 1
    ffn_multiplier = 4
    appended_at_inference = 1
    training_input: ClassVar[Literal["shifted", "full"]] = "full"

    def __init__(self, n_items: int, max_len: int, config: ModelConfig, n_users: int | None = None):
        super().__init__(n_items, max_len, config, n_users)
        d = self.config.hidden_size
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU())
        self.reset_parameters()

    @property
    def mask_token(self) -> int:
        return self.n_items + 1

    def training_batch(self, batch: Batch, generator: torch.Generator) -> Batch:
        """Cloze: mask ``mask_prob`` of the real items (at least one per sequence)."""
        items = batch.item_seq
        real = items != PAD
        u = torch.rand(items.shape, generator=generator)
        masked = real & (u < self.config.mask_prob)
        # a sequence with no masked item gets its real item with the smallest draw masked
        none = ~masked.any(1)
        if bool(none.any()):
            pick = u.masked_fill(~real, 2.0).argmin(1)
            masked[none, pick[none]] = True
        return replace(
            batch,
            item_seq=items.masked_fill(masked, self.mask_token),
            pos_items=items.masked_fill(~masked, PAD),
            neg_items=None,
        )

    def encode(self, batch: Batch) -> Tensor:
        hidden = super().encode(batch)
        valid = batch.padding_mask.unsqueeze(-1).to(hidden.dtype)
        return self.head(hidden) * valid

    def inference_input(self, batch: Batch) -> Batch:
        """``item_seq`` followed by ``[mask]``, at most ``max_len`` wide (oldest column dropped)."""
        items = batch.item_seq
        if items.shape[1] >= self.max_len:
            items = items[:, items.shape[1] - self.max_len + 1 :]
        mask = torch.full_like(items[:, :1], self.mask_token)
        return Batch(item_seq=torch.cat([items, mask], dim=1), users=batch.users)

    def user_vector(self, batch: Batch) -> Tensor:
        return self.encode(self.inference_input(batch))[:, -1, :]
