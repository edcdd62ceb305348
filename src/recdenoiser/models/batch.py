"""The tensors a model receives, in one vocabulary shared by training and evaluation.

All sequences are **left-padded** with ``PAD = 0`` to a common length ``L``; the most recent
interaction sits in the last column.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor

from recdenoiser.data.dataset import PAD


@dataclass
class Batch:
    """A batch of user histories.

    Attributes:
        item_seq: ``[B, L]`` int64 input items, left-padded with PAD.
        users: ``[B]`` int64 internal user ids.
        pos_items: ``[B, L]`` next-item targets aligned with ``item_seq`` (PAD where none);
            training only.
        neg_items: ``[B, L, K]`` sampled negatives per position; training only.
        time_seq: ``[B, L]`` int64 unix timestamps aligned with ``item_seq`` (0 at PAD), or None.
        loss_scale: training only: the batch's number of targets over the epoch's mean per
            batch. Objectives multiply the next-item loss (a mean over the batch's targets) by
            it, so every target weighs the same whatever batch it falls in (length-bucketed
            batches hold very different numbers of targets).
    """

    item_seq: Tensor
    users: Tensor
    pos_items: Tensor | None = None
    neg_items: Tensor | None = None
    time_seq: Tensor | None = None
    loss_scale: float = 1.0

    @property
    def padding_mask(self) -> Tensor:
        """``[B, L]`` bool, True where the position holds a real item (not padding)."""
        return self.item_seq != PAD

    def to(self, device: torch.device | str) -> Batch:
        moved: dict[str, object] = {
            f.name: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v)
            for f in fields(self)
            for v in [getattr(self, f.name)]
        }
        return Batch(**moved)  # type: ignore[arg-type]

    def select(self, index: Tensor) -> Batch:
        """The sub-batch of rows ``index``."""
        return replace(
            self,
            **{
                f.name: getattr(self, f.name)[index]
                for f in fields(self)
                if isinstance(getattr(self, f.name), Tensor)
            },
        )

    def __len__(self) -> int:
        return int(self.item_seq.shape[0])


def pad_left(sequences: list[np.ndarray], length: int, dtype: type = np.int64) -> np.ndarray:
    """Stack the last ``length`` entries of each sequence into ``[len(sequences), length]``.

    Shorter sequences are left-padded with PAD; longer ones keep their most recent entries.
    """
    out: np.ndarray = np.full((len(sequences), length), PAD, dtype=dtype)
    for row, seq in enumerate(sequences):
        tail = seq[-length:] if length > 0 else seq[:0]
        if len(tail):
            out[row, length - len(tail) :] = tail
    return out
