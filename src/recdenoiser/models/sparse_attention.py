"""The two sparse-attention baselines of the paper's robustness figure.

* :func:`entmax15`: 1.5-entmax (Peters, Niculae & Martins 2019), the normaliser of the adaptively
  sparse Transformer (Correia, Niculae & Martins 2019) with ``alpha = 1.5``. It replaces the
  softmax of the attention and gives exactly zero weight to low-scoring keys.
* :func:`sparse_fixed_pattern`: a fixed sparse pattern in the style of the Sparse Transformer
  (Child et al. 2019): every query sees a local window of recent positions plus strided
  "summary" columns. It restricts which keys a query may attend to; the softmax is unchanged.

Convention for 1.5-entmax. With ``x = z / 2`` (``z`` the attention scores ``QK^T / sqrt(d_h)``)
the output is ``p_i = max(0, x_i - tau)^2`` where the threshold ``tau`` is the unique number with
``sum_i p_i = 1``. This is ``alpha``-entmax's ``[(alpha - 1) z - tau]_+^(1 / (alpha - 1))`` at
``alpha = 1.5``, the scaling used by Peters et al. (no temperature is added).

Exact threshold by sorting. Sort ``x`` in decreasing order, ``x_(1) >= x_(2) >= ...``. If the
support is the top ``k`` entries, ``tau`` solves ``sum_{j<=k} (x_(j) - tau)^2 = 1``, whose
smaller root is ``tau_k = mean_k - sqrt((1 - k * var_k) / k)`` (``mean_k``, ``var_k``: mean and
population variance of the top ``k``). The support size is the number of ``k`` with
``tau_k < x_(k)`` (the valid ``k`` form a prefix ``1..k*``) and ``tau = tau_{k*}``.

Two observations keep this exact and cheap in floating point: entmax is invariant to adding a
constant, so the row maximum is subtracted first; then ``tau >= -1`` (the largest weight is at
most 1) so every ``x_i <= -1`` is outside the support and may be clamped to ``-2`` without
changing ``tau`` (and every ``tau_k >= -1``, so a clamped entry is never counted in the support;
clamping to exactly ``-1`` would let rounding count ties at the threshold). Masked keys are set to
``-2`` the same way and are zeroed exactly afterwards.

Non-finite scores (a diverging run): ``-inf`` is a key with no weight, like a masked one; the
``+inf`` keys of a row share its weight equally (the limit of 1.5-entmax as they grow together,
all other weights 0); a NaN makes its whole row NaN, as it does with the softmax. Masked keys
never matter, whatever their score.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _entmax15_root_forward(x: Tensor, mask: Tensor | None) -> Tensor:
    """``s = max(0, x - tau)`` along the last dim (``s**2`` is the 1.5-entmax of ``2 x``)."""
    if mask is not None:
        x = x.masked_fill(~mask, float("-inf"))
    top = x.amax(dim=-1, keepdim=True)  # NaN when the row holds a NaN, +inf for a +inf
    nan_row = torch.isnan(top)
    inf_key = x == float("inf")
    inf_row = top == float("inf")
    any_key = torch.isfinite(top)  # the regular rows; False also where every key is masked
    top = torch.where(any_key, top, torch.zeros_like(top))
    # values in [-2, 0], maximum 0; x <= -1 is never in the support (module docstring). The
    # other rows are computed on a placeholder (-2 everywhere) and set at the end.
    x = torch.where(any_key, x - top, torch.full_like(x, -2.0)).clamp_min(-2.0)
    x = torch.where(x <= -1.0, torch.full_like(x, -2.0), x)
    xs = x.sort(dim=-1, descending=True).values
    k = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)
    mean = xs.cumsum(dim=-1) / k
    mean_sq = (xs * xs).cumsum(dim=-1) / k
    delta = (1.0 - k * (mean_sq - mean * mean)) / k
    tau = mean - delta.clamp_min(0.0).sqrt()  # tau_k for every prefix size k
    support = (tau < xs).sum(dim=-1, keepdim=True)  # >= 1: tau_1 = x_(1) - 1
    tau_star = tau.gather(-1, support - 1)
    s = (x - tau_star).clamp_min(0.0)
    if mask is not None:
        s = s.masked_fill(~mask, 0.0)
    s = torch.where(any_key, s, torch.zeros_like(s))  # every key masked (or -inf): zeros
    # the +inf keys of a row share its weight equally (the limit as they grow together); a NaN
    # makes its whole row NaN, as in the softmax
    n_inf = inf_key.sum(dim=-1, keepdim=True).clamp_min(1).to(s.dtype)
    s = torch.where(inf_row, inf_key.to(s.dtype) * n_inf.rsqrt(), s)
    return torch.where(nan_row, torch.full_like(s, float("nan")), s)


class _Entmax15Root(torch.autograd.Function):
    """``x -> max(0, x - tau(x))`` with its exact Jacobian.

    On the support ``S``, ``sum_S s_i^2 = 1`` gives ``d tau = sum_S s_i dx_i / sum_S s_i``, so
    ``ds_i = 1[i in S] (dx_i - d tau)``. The backward pass only uses differentiable operations on
    the saved output, so second derivatives (Jacobian regularization) work too. Working with
    ``s = sqrt(p)`` rather than ``p`` avoids the infinite slope of ``sqrt`` at ``p = 0``.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, mask: Tensor | None) -> Tensor:
        low_precision = x.dtype in (torch.float16, torch.bfloat16)
        s = _entmax15_root_forward(x.float() if low_precision else x, mask).to(x.dtype)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (s,) = ctx.saved_tensors
        support = (s > 0).to(grad.dtype)
        grad_support = grad * support
        total = s.sum(dim=-1, keepdim=True)
        total = torch.where(total > 0, total, torch.ones_like(total))  # all-masked rows: s == 0
        return grad_support - s * (grad_support.sum(dim=-1, keepdim=True) / total), None


def entmax15(scores: Tensor, dim: int = -1, mask: Tensor | None = None) -> Tensor:
    """1.5-entmax of ``scores`` along ``dim``: ``max(0, scores / 2 - tau)^2``, summing to 1.

    Args:
        scores: real scores (any floating dtype; half precision is computed in float32);
            ``-inf`` gets no weight, the ``+inf`` of a slice share its weight, a NaN makes its
            slice NaN (module docstring).
        dim: the dimension that is normalised.
        mask: optional bool tensor broadcastable to ``scores``, True where an entry is allowed.
            Disallowed entries get exactly zero weight; a slice where nothing is allowed is all
            zeros (not NaN), with zero gradient.

    Returns:
        A tensor shaped like ``scores``; differentiable (twice) with respect to ``scores``.
    """
    if mask is not None:
        mask = mask.expand_as(scores).movedim(dim, -1)
    x = (scores / 2).movedim(dim, -1)
    s = _Entmax15Root.apply(x, mask)
    return (s * s).movedim(-1, dim)


def sparse_fixed_pattern(
    length: int, window: int, stride: int, causal: bool, device: torch.device | None = None
) -> Tensor:
    """``[L, L]`` bool: True where query ``i`` may attend to key ``j`` under the fixed pattern.

    Query ``i`` sees key ``j`` when ``j`` is in its local window (causal: ``0 <= i - j <
    window``; bidirectional: ``|i - j| < window``) or ``j`` is a summary column (causal: only
    those with ``j <= i``). Summary columns are counted from the **end** of the sequence:
    with ``m = L - 1 - j`` the distance from the newest column, ``j`` is a summary column iff
    ``(m + 1) % stride == 0`` (the ``stride``-th, ``2 * stride``-th, ... newest positions).
    Sequences are left-padded and the newest item is always the last column, so the pattern
    depends only on positions relative to the newest item: adding left padding does not change
    which real items a query sees (the same convention as the position embeddings).

    The diagonal is always allowed (``window >= 1``), so no query is left without a key. The
    pattern is combined (AND) with the causal and padding restrictions by the caller.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"sparse window ({window}) and stride ({stride}) must be >= 1")
    idx = torch.arange(length, device=device)
    offset = idx.unsqueeze(1) - idx.unsqueeze(0)  # i - j
    local = ((offset >= 0) & (offset < window)) if causal else (offset.abs() < window)
    from_end = length - 1 - idx
    summary = ((from_end + 1) % stride == 0).unsqueeze(0).expand(length, length)
    if causal:
        summary = summary & (offset >= 0)
    return local | summary


__all__ = ["entmax15", "sparse_fixed_pattern"]
