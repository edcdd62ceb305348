"""Input embeddings: items (scaled by sqrt(d)) plus learnable positions counted from the end."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from recdenoiser.data.dataset import PAD
from recdenoiser.models.dropout import Dropout


def positions_from_end(padding_mask: Tensor) -> Tensor:
    """``[B, L]`` int64 position ids: the most recent item is 1, the one before 2, ...; PAD is 0.

    Counting from the end makes a sequence's representation independent of how much left padding
    it has (SASRec's window always ends at the last item, so this matches its convention).
    """
    valid = padding_mask.long()
    # reverse cumulative sum along the sequence: number of real items at or after each position
    return valid.flip(-1).cumsum(-1).flip(-1) * valid


def gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """``table[index]`` for a ``[N, d]`` table and an integer index of any shape -> ``[*index, d]``.

    ``index_select`` back-propagates with ``index_add_``; on CPU this is tens of times faster than
    the ``index_put_`` behind ``table[index]`` and ``nn.Embedding`` for large tables.
    """
    return table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[1])


class SequenceEmbedding(nn.Module):
    """``item_embedding(item) * sqrt(d) + position_embedding(pos)``, dropout, padding zeroed."""

    def __init__(self, n_items: int, hidden_size: int, max_len: int, dropout: float):
        super().__init__()
        self.hidden_size = hidden_size
        self.max_len = max_len
        self.items = nn.Embedding(n_items + 1, hidden_size, padding_idx=PAD)
        self.positions = nn.Embedding(max_len + 1, hidden_size, padding_idx=0)
        self.dropout = Dropout(dropout)

    def forward(self, item_seq: Tensor, padding_mask: Tensor) -> Tensor:
        """``[B, L]`` item ids -> ``[B, L, d]`` input hidden states (zero at padding)."""
        if item_seq.shape[1] > self.max_len:
            raise ValueError(f"sequence length {item_seq.shape[1]} exceeds max_len {self.max_len}")
        x = gather_rows(self.items.weight, item_seq) * math.sqrt(self.hidden_size)
        x = x + gather_rows(self.positions.weight, positions_from_end(padding_mask))
        x = self.dropout(x)
        return x * padding_mask.unsqueeze(-1).to(x.dtype)

    def reset_padding(self) -> None:
        with torch.no_grad():
            self.items.weight[PAD].zero_()
            self.positions.weight[0].zero_()
