"""Multi-head self-attention with a hook for a multiplicative attention mask.

The hook is what Rec-Denoiser plugs into: a ``keep`` tensor (values in [0, 1], shared by all
heads) multiplies the attention weights *after* the softmax, without renormalising rows, as in
the paper: ``M = softmax(QK^T / sqrt(d)) * Z``. With no ``keep`` tensor the fused
``scaled_dot_product_attention`` kernel is used.

The normaliser is the softmax, or 1.5-entmax (``normalizer="entmax15"``, a sparse-attention
baseline, see :mod:`recdenoiser.models.sparse_attention`), which always takes the explicit path;
the ``keep`` mask multiplies whichever weights the normaliser produced.

Mask vocabulary: ``allowed`` is a bool tensor whose True means "this query may attend to this
key" (the same meaning as a boolean ``attn_mask`` in PyTorch).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recdenoiser.models.dropout import fast_dropout
from recdenoiser.models.sparse_attention import entmax15

Normalizer = Literal["softmax", "entmax15"]


def attention_allowed(padding_mask: Tensor, causal: bool) -> Tensor:
    """``[B, L]`` bool (True = real item) -> ``[B, L, L]`` bool, True where a query may attend.

    Padding keys are never attended to. Every position may attend to itself so that a padding
    query has at least one key (its output is discarded), which keeps the softmax finite.
    """
    length = padding_mask.shape[1]
    allowed = padding_mask.unsqueeze(1).expand(-1, length, -1)
    if causal:
        allowed = (
            allowed
            & torch.ones(length, length, dtype=torch.bool, device=padding_mask.device).tril()
        )
    eye = torch.eye(length, dtype=torch.bool, device=padding_mask.device)
    return allowed | eye


class MultiHeadSelfAttention(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        dropout: float,
        fused: bool = True,
        normalizer: Normalizer = "softmax",
    ):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout
        self.fused = fused
        self.normalizer = normalizer

    def forward(
        self,
        x: Tensor,
        allowed: Tensor,
        keep: Tensor | None = None,
        explicit: bool = False,
        last_only: bool = False,
        kv: Tensor | None = None,
    ) -> Tensor:
        """Self-attention over ``x``.

        Args:
            x: ``[B, L, d]`` hidden states.
            allowed: ``[B, L, L]`` bool, True where query i may attend to key j.
            keep: optional ``[B or 1, L, L]`` multiplicative mask applied after the softmax.
            explicit: force the reference path (needed for double backward, e.g. Jacobian
                regularization: the fused CPU kernel's backward is not differentiable).
            last_only: compute the output of the last query only (``[B, 1, d]``): all that
                scoring the next item needs from the final layer.
            kv: optional ``[B, L, d]`` states for keys and values (queries come from ``x``), as
                in SASRec's reference block where only the query path is layer-normalised.

        Returns:
            ``[B, L, d]``.
        """
        b, length, d = x.shape
        # [B, L, 3d] -> 3 x [B, H, L, d_h]
        if kv is None:
            q, k, v = self.qkv(x).view(b, length, 3, self.num_heads, self.head_dim).unbind(2)
        else:
            w, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x, w[:d], bias[:d]).view(b, length, self.num_heads, self.head_dim)
            kv_proj = F.linear(kv, w[d:], bias[d:]).view(b, length, 2, self.num_heads, -1)
            k, v = kv_proj.unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if last_only:
            q, allowed = q[:, :, -1:], allowed[:, -1:]
            keep = None if keep is None else keep[:, -1:]
        p_drop = self.dropout if self.training else 0.0
        fusable = self.fused and self.normalizer == "softmax" and not explicit
        if keep is None and fusable and (p_drop == 0.0 or q.is_cuda):
            ctx = F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed.unsqueeze(1), dropout_p=p_drop
            )
        else:
            ctx = self.explicit(q, k, v, allowed, keep, p_drop)
        return self.out(ctx.transpose(1, 2).reshape(b, q.shape[2], d))

    def explicit(
        self, q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, keep: Tensor | None, p_drop: float
    ) -> Tensor:
        """Reference path: ``softmax(QK^T/sqrt(d_h))``, masked, times ``keep``, dropout, ``@ V``."""
        scores = q @ k.transpose(-2, -1) / (self.head_dim**0.5)  # [B, H, L, L]
        weights = self.normalize(scores, allowed.unsqueeze(1))
        if keep is not None:
            weights = weights * keep.unsqueeze(1).to(weights.dtype)  # shared by all heads
        weights = fast_dropout(weights, p_drop, p_drop > 0)
        return weights @ v

    def normalize(self, scores: Tensor, allowed: Tensor) -> Tensor:
        """Attention weights from ``scores`` ``[B, H, Lq, L]``; ``allowed`` broadcasts to them.

        Disallowed keys get weight 0 with either normaliser.
        """
        if self.normalizer == "entmax15":
            return entmax15(scores, dim=-1, mask=allowed)
        return scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
