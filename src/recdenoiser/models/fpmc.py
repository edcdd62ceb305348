"""FPMC (Rendle, Freudenthaler & Schmidt-Thieme, WWW 2010): factorizing personalized Markov
chains.

The score of item ``i`` for user ``u`` whose previous item is ``l`` adds a matrix-factorization
term and a factorized first-order Markov-chain term::

    score(u, l, i) = <V_u^{UI}, V_i^{IU}> + <V_i^{IL}, V_l^{LI}>

(the paper's third term, ``<V_u^{UL}, V_l^{LU}>``, is the same for every candidate ``i`` and
drops out of any ranking). To fit the shared dot-product interface, the hidden state at position
``t`` is ``[V_u^{UI} ; V_{s_t}^{LI}]`` and :meth:`item_table` is ``[V^{IU} ; V^{IL}]``, so
``hidden . item_table[i]`` is the score above with ``l = s_t``. Both factorizations have
``hidden_size`` dimensions (``k_UI = k_IL``), so hidden states are ``2 * hidden_size`` wide.

Paper: S-BPR (BPR with one sampled negative per target) trained by SGD with L2 regularization,
weights drawn from a zero-mean normal with a small std. Defaults here: ``loss: bpr`` with one
negative (the configuration), Adam (the shared trainer), N(0, 0.01^2) weights (``init_std``
overrides the std), no dropout (``model.dropout`` is ignored).

Departures: a "basket" is a single item, so ``l`` is the item right before the target (the usual
reading of FPMC in sequential recommendation); every position of a history is a training target,
as for SASRec; the paper's L2 penalty is not built in (``train.weight_decay`` adds Adam's L2 over
all parameters instead, which also shrinks rows absent from a batch).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recdenoiser.config import ModelConfig
from recdenoiser.data.dataset import PAD
from recdenoiser.errors import ConfigError
from recdenoiser.models.base import MODELS, SequentialRecommender
from recdenoiser.models.batch import Batch
from recdenoiser.models.embedding import gather_rows

#: FPMC's default init std when ``model.init_std`` is unset
DEFAULT_STD = 0.01


def require_users(name: str, n_users: int | None) -> int:
    """``n_users`` for a model with a user embedding; a one-line ConfigError when missing."""
    if n_users is None or n_users < 1:
        raise ConfigError(f"{name} needs the number of users (build it with n_users=...)")
    return n_users


@MODELS.register("fpmc")
class FPMC(SequentialRecommender):
    causal = True
    uses_user_ids = True

    def __init__(self, n_items: int, max_len: int, config: ModelConfig, n_users: int | None = None):
        users = require_users("fpmc", n_users)
        super().__init__(n_items, max_len, config, users)
        d = config.hidden_size
        self.user_item = nn.Embedding(users, d)  # V^{UI}: user against candidate items
        self.item_user = nn.Embedding(n_items + 1, d, padding_idx=PAD)  # V^{IU}
        self.item_last = nn.Embedding(n_items + 1, d, padding_idx=PAD)  # V^{IL}: candidate side
        self.last_item = nn.Embedding(n_items + 1, d, padding_idx=PAD)  # V^{LI}: previous item
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.init_std or DEFAULT_STD
        for table in (self.user_item, self.item_user, self.item_last, self.last_item):
            nn.init.normal_(table.weight, std=std)
        with torch.no_grad():
            for table in (self.item_user, self.item_last, self.last_item):
                table.weight[PAD].zero_()

    def encode(self, batch: Batch) -> Tensor:
        """``[B, L, 2d]``: ``[V_u^{UI} ; V_{s_t}^{LI}]`` at every real position, zero at PAD."""
        last = gather_rows(self.last_item.weight, batch.item_seq)  # [B, L, d]
        user = gather_rows(self.user_item.weight, batch.users).unsqueeze(1)  # [B, 1, d]
        hidden = torch.cat([user.expand_as(last), last], dim=-1)
        return hidden * batch.padding_mask.unsqueeze(-1).to(hidden.dtype)

    def item_table(self) -> Tensor:
        return torch.cat([self.item_user.weight, self.item_last.weight], dim=-1)
