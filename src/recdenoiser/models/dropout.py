"""Dropout from a uniform draw and a comparison.

On CPU, ``torch.nn.functional.dropout`` draws its mask with ``bernoulli_``, which profiles at
about 40% of a SASRec training step; ``rand_like(x) >= p`` gives the same distribution about four
times faster. The result is the usual inverted dropout: kept units are scaled by ``1 / (1 - p)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def fast_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    keep = torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))
    return x * keep


class Dropout(nn.Module):
    """Drop-in replacement for :class:`torch.nn.Dropout` using :func:`fast_dropout`."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
