"""GRU4Rec (Hidasi, Karatzoglou, Baltrunas & Tikk, ICLR 2016): a recurrent network over the
item sequence.

Item embedding (dropout) -> GRU with ``num_blocks`` layers of ``hidden_size`` units (dropout
between layers) -> dropout -> the hidden state at every position, scored against a separate
output item table with a per-item bias (the paper's output layer ``h W_y + b_y``; the bias enters
the shared dot product as a constant last coordinate, ``[h ; 1] . [W_y[i] ; b_y[i]]``).

Paper: one GRU layer of 100 units, TOP1 or BPR ranking losses over the other items of the
mini-batch (about 50 negatives), dropout 0.5 for TOP1, Adagrad, weights drawn uniformly in
``+-sqrt(6 / (fan_in + fan_out))``. Defaults here: the same width, depth, loss and dropout with 49
uniformly sampled negatives, Adam (the shared trainer), Xavier-uniform weights per GRU gate and
zero biases (``init_std`` switches every weight matrix to N(0, init_std^2)). ``model.loss`` picks
``top1``, ``bpr``, ``softmax`` (cross-entropy over all items) or any other registered loss.

Departures: the paper feeds one-hot items (it reports that an extra embedding layer did not
help); here items are embedded (width ``hidden_size``). It trains on session-parallel
mini-batches with in-batch negatives; here histories are left-padded like SASRec's, every
position is a next-item target and negatives come from the shared uniform sampler (items outside
the user's training history). Left padding never reaches the GRU: each history is packed, so its
hidden states do not depend on how much padding precedes it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from recdenoiser.config import ModelConfig
from recdenoiser.data.dataset import PAD
from recdenoiser.models.base import MODELS, SequentialRecommender
from recdenoiser.models.batch import Batch
from recdenoiser.models.dropout import Dropout
from recdenoiser.models.embedding import gather_rows


def shift_rows(x: Tensor, shift: Tensor) -> Tensor:
    """``out[b, t] = x[b, (t + shift[b]) % L]`` for ``x`` ``[B, L, d]``: rotates each row left."""
    length = x.shape[1]
    steps = torch.arange(length, device=x.device)
    index = (steps.unsqueeze(0) + shift.unsqueeze(1)) % length  # [B, L]
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


@MODELS.register("gru4rec")
class GRU4Rec(SequentialRecommender):
    causal = True

    def __init__(self, n_items: int, max_len: int, config: ModelConfig, n_users: int | None = None):
        super().__init__(n_items, max_len, config, n_users)
        d = config.hidden_size
        p = float(config.dropout)  # resolved from "auto" before models are built
        self.items = nn.Embedding(n_items + 1, d, padding_idx=PAD)
        self.dropout = Dropout(p)
        self.gru = nn.GRU(
            d,
            d,
            num_layers=config.num_blocks,
            batch_first=True,
            dropout=p if config.num_blocks > 1 else 0.0,
        )
        self.output = nn.Parameter(torch.empty(n_items + 1, d))  # W_y
        self.output_bias = nn.Parameter(torch.empty(n_items + 1))  # b_y
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.init_std
        for name, param in self.named_parameters():
            if param.dim() < 2:
                nn.init.zeros_(param)
            elif std is not None:
                nn.init.normal_(param, std=std)
            elif name.startswith("gru."):
                for gate in param.chunk(3, dim=0):  # reset, update and candidate weights
                    nn.init.xavier_uniform_(gate)
            else:
                nn.init.xavier_uniform_(param)
        with torch.no_grad():
            self.items.weight[PAD].zero_()

    def encode(self, batch: Batch) -> Tensor:
        """``[B, L, d + 1]``: ``[h_t ; 1]`` at every real position, zero at PAD."""
        mask = batch.padding_mask
        valid = mask.unsqueeze(-1).to(self.output.dtype)
        x = self.dropout(gather_rows(self.items.weight, batch.item_seq)) * valid
        lengths = mask.sum(1)
        padding = mask.shape[1] - lengths
        # right-align each history (padding to the end) so that packing skips the padding
        packed = pack_padded_sequence(
            shift_rows(x, padding),
            lengths.clamp_min(1).cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=mask.shape[1])
        hidden = self.dropout(shift_rows(out, -padding)) * valid  # back to left padding
        return torch.cat([hidden, valid], dim=-1)

    def item_table(self) -> Tensor:
        return torch.cat([self.output, self.output_bias.unsqueeze(-1)], dim=-1)
