"""Caser (Tang & Wang, WSDM 2018): convolutional sequence embedding.

For each position ``t`` the ``L = caser_window`` most recent items up to ``t`` form an ``L x d``
"image" ``E``. Horizontal convolutions (``caser_h_filters`` filters of each height ``1..L``, ReLU,
max-pooled over the window) capture union-level and skip patterns; a vertical convolution
(``caser_v_filters`` filters of size ``L x 1``: weighted sums of the ``L`` rows) captures
point-level ones. Both are concatenated, passed through dropout and a ReLU fully-connected layer
to ``z`` (width ``d``), joined with the user embedding ``P_u``, and item ``i`` scores
``W'_i . [z ; P_u] + b'_i`` with a separate output table ``W'`` and item bias ``b'`` (folded into
the shared dot product as ``[z ; P_u ; 1] . [W'_i ; b'_i]``).

Paper defaults: ``d = 50``, ``L = 5``, 16 horizontal filters per height, 4 vertical filters,
dropout 0.5, binary cross-entropy with 3 sampled negatives, Adam; embeddings (and ``W'``) drawn
from N(0, (1/width)^2), zero ``b'``, PyTorch defaults for the convolutions and the dense layer
(``init_std`` overrides the std of the embedding and output tables).

Departures: the paper trains on sliding windows (``L`` inputs, the next ``T = 3`` items as
targets); our choice is per-position next-item training as for SASRec: the model runs at every
position of the left-padded history (all windows at once, the convolutions sliding over the whole
sequence) and each position predicts its next item. Windows that start before the history are
filled with zero vectors, the same however much padding precedes them. The negatives come from the
shared sampler (items outside the user's training history) and the ``bce`` loss averages over
them instead of summing.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recdenoiser.config import ModelConfig
from recdenoiser.data.dataset import PAD
from recdenoiser.errors import ConfigError
from recdenoiser.models.base import MODELS, SequentialRecommender
from recdenoiser.models.batch import Batch
from recdenoiser.models.dropout import Dropout
from recdenoiser.models.embedding import gather_rows
from recdenoiser.models.fpmc import require_users


@MODELS.register("caser")
class Caser(SequentialRecommender):
    causal = True
    uses_user_ids = True

    def __init__(self, n_items: int, max_len: int, config: ModelConfig, n_users: int | None = None):
        users = require_users("caser", n_users)
        super().__init__(n_items, max_len, config, users)
        d = config.hidden_size
        window = self.window = config.caser_window
        n_h, n_v = config.caser_h_filters, config.caser_v_filters
        self.items = nn.Embedding(n_items + 1, d, padding_idx=PAD)
        self.users = nn.Embedding(users, d)
        self.horizontal = nn.ModuleList(
            nn.Conv1d(d, n_h, kernel_size=h) for h in range(1, window + 1)
        )
        self.vertical = nn.Conv1d(1, n_v, kernel_size=window)  # one L x 1 filter per channel
        self.dropout = Dropout(float(config.dropout))  # resolved from "auto" before building
        self.dense = nn.Linear(n_h * window + n_v * d, d)
        self.output = nn.Parameter(torch.empty(n_items + 1, 2 * d))  # W'
        self.output_bias = nn.Parameter(torch.empty(n_items + 1))  # b'
        self.reset_parameters()

    @classmethod
    def check_config(cls, config: ModelConfig, max_len: int | None = None) -> None:
        """Also: the window fits in the input (larger ones only add zero rows and weights)."""
        super().check_config(config, max_len)
        if max_len is not None and config.caser_window > max_len:
            raise ConfigError(
                f"model.caser_window ({config.caser_window}) must not exceed data.max_len "
                f"({max_len})"
            )

    def reset_parameters(self) -> None:
        std = self.config.init_std
        for table in (self.items.weight, self.users.weight, self.output):
            nn.init.normal_(table, std=std or 1.0 / table.shape[1])
        nn.init.zeros_(self.output_bias)
        with torch.no_grad():
            self.items.weight[PAD].zero_()

    def encode(self, batch: Batch) -> Tensor:
        """``[B, L, 2d + 1]``: ``[z_t ; P_u ; 1]`` at every real position, zero at PAD."""
        valid = batch.padding_mask.unsqueeze(-1).to(self.output.dtype)
        b, length = batch.item_seq.shape
        d = self.config.hidden_size
        x = gather_rows(self.items.weight, batch.item_seq) * valid  # [B, L, d]
        # window t covers padded columns t .. t + window - 1 (items t - window + 1 .. t)
        x = F.pad(x.transpose(1, 2), (self.window - 1, 0))  # [B, d, L + window - 1]
        pooled = []
        for h, conv in enumerate(self.horizontal, start=1):
            # a filter of height h fits window - h + 1 times in each window: max over them
            act = torch.relu(conv(x))  # [B, n_h, L + window - h]
            pooled.append(F.max_pool1d(act, kernel_size=self.window - h + 1, stride=1))
        horizontal = torch.cat(pooled, dim=1).transpose(1, 2)  # [B, L, n_h * window]
        vertical = self.vertical(x.reshape(b * d, 1, -1))  # [B * d, n_v, L]
        vertical = vertical.view(b, d, -1, length).permute(0, 3, 2, 1).reshape(b, length, -1)
        z = torch.relu(self.dense(self.dropout(torch.cat([vertical, horizontal], dim=-1))))
        user = gather_rows(self.users.weight, batch.users).unsqueeze(1).expand(-1, length, -1)
        return torch.cat([z, user, torch.ones_like(z[..., :1])], dim=-1) * valid

    def user_vector(self, batch: Batch) -> Tensor:
        """``[B, 2d + 1]`` from the last ``window`` columns only (all the last position sees)."""
        recent = replace(batch, item_seq=batch.item_seq[:, -self.window :])
        return self.encode(recent)[:, -1, :]

    def item_table(self) -> Tensor:
        return torch.cat([self.output, self.output_bias.unsqueeze(-1)], dim=-1)
