"""Trainable binary attention masks, one per self-attention layer (Rec-Denoiser, Sec. 3).

For layer ``l`` the mask ``Z(l)`` is Bernoulli with keep probability ``Π(l) = sigmoid(Φ(l))``:

* ``positional`` (the paper): ``Φ(l)`` is a learnable ``n x n`` table indexed by (query
  position, key position), independent of the items in the sequence;
* ``input_dependent`` (an extension): ``Φ(l)[u, v] + <W_q e_u, W_k e_v> / sqrt(r)``, a low-rank
  bilinear score of the two positions' input embeddings ``e`` added to the positional table, so
  that a particular item in a particular history can be pruned.

Positions are aligned to the end of the sequence: row/column ``n-1`` of ``Φ`` is always the most
recent item, whatever the padding. Input-dependent logits are computed from the embedding layer's
output, which is the same in both ARM passes (the estimator needs one set of logits per draw).

The mask is applied after the softmax and shared by the heads of a layer. During training the
module emits a sampled hard mask chosen by the Rec-Denoiser objective
(``Z1 = 1[U > sigmoid(-logit)]`` or ``Z2 = 1[U < sigmoid(logit)]``); in evaluation it emits
the deterministic inference mask: entries with ``sigmoid(logit) <= 0.5`` are 0 and the others
``sigmoid(logit)`` (``inference_mask="soft"``, default) or 1 (``"binary"``), the paper's rule.
``"expected"`` (beyond the paper) keeps every entry at ``sigmoid(logit)``, the expected value of
the training mask, as with dropout: the rule's threshold removes every entry of a layer whose
keep probabilities have all fallen to 0.5 or below, although training still drew masks that kept
some of them.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from recdenoiser.config import DenoiserConfig

Antithetic = Literal[1, 2]


class AttentionMasks(nn.Module):
    """The mask provider plugged into a :class:`SelfAttentiveRecommender`'s attention hook."""

    def __init__(self, num_layers: int, max_len: int, hidden_size: int, config: DenoiserConfig):
        super().__init__()
        self.num_layers = num_layers
        self.config = config
        init = math.log(config.init_keep_prob / (1.0 - config.init_keep_prob))
        self.phi = nn.Parameter(torch.full((num_layers, max_len, max_len), init))
        self.input_dependent = config.mask_kind == "input_dependent"
        if self.input_dependent:
            r = config.rank
            self.query = nn.Linear(hidden_size, num_layers * r, bias=False)
            self.key = nn.Linear(hidden_size, num_layers * r, bias=False)
            nn.init.normal_(self.query.weight, std=0.02)
            nn.init.normal_(self.key.weight, std=0.02)
        # set by the objective for the current training pass
        self.noise: Tensor | None = None  # U, [layers, B or 1, L, L]
        self.draw: Antithetic = 2
        self.last_logits: Tensor | None = None
        self.last_allowed: Tensor | None = None
        self.forced_keep: Tensor | None = None  # testing/analysis: fixed keep mask per layer

    def logits(self, embedded: Tensor) -> Tensor:
        """Mask logits ``[layers, B or 1, L, L]`` for the input embeddings ``[B, L, d]``."""
        b, length, _ = embedded.shape
        phi = self.phi[:, -length:, -length:].unsqueeze(1)  # [layers, 1, L, L]
        if not self.input_dependent:
            return phi
        r = self.config.rank
        q = self.query(embedded).view(b, length, self.num_layers, r).permute(2, 0, 1, 3)
        k = self.key(embedded).view(b, length, self.num_layers, r).permute(2, 0, 1, 3)
        return phi + q @ k.transpose(-2, -1) / math.sqrt(r)  # [layers, B, L, L]

    def inference_keep(self, logits: Tensor) -> Tensor:
        prob = torch.sigmoid(logits)
        if self.config.inference_mask == "expected":
            return prob
        kept = prob if self.config.inference_mask == "soft" else torch.ones_like(prob)
        return torch.where(prob > 0.5, kept, torch.zeros_like(prob))

    def forward(self, embedded: Tensor, allowed: Tensor) -> list[Tensor | None]:
        """One keep mask per layer, each ``[B or 1, L, L]``."""
        if self.forced_keep is not None:
            return list(self.forced_keep)
        logits = self.logits(embedded)
        if not self.training or self.noise is None:
            return list(self.inference_keep(logits))
        self.last_logits, self.last_allowed = logits, allowed
        u = self.noise
        with torch.no_grad():
            if self.draw == 1:
                keep = (u > torch.sigmoid(-logits)).to(embedded.dtype)
            else:
                keep = (u < torch.sigmoid(logits)).to(embedded.dtype)
        return list(keep)

    def keep_probabilities(self, embedded: Tensor) -> Tensor:
        """``[layers, B or 1, L, L]`` keep probabilities ``sigmoid(logits)``."""
        return torch.sigmoid(self.logits(embedded))
