"""Jacobian regularization of Transformer blocks (Rec-Denoiser, Sec. 3.3).

``R_J = sum_l ||J(l)||_F^2`` where ``J(l)`` is the Jacobian of block ``l``'s output with respect
to its input hidden states. It is estimated with random projections,
``||J||_F^2 = E_eta ||eta^T J||^2`` for ``eta ~ N(0, I)``: one vector-Jacobian product per block
and projection, built with ``create_graph=True`` so that the penalty trains the model. The value
is averaged over the sequences of the batch (the Jacobian of a batch is block-diagonal by
sequence), so ``gamma`` does not depend on the batch size.

``subtract_identity=True`` penalises ``||J(l) - I||_F^2`` instead: the sensitivity a block adds to
its skip connections. A residual block's Jacobian contains the identity, whose squared norm (one
per hidden unit and real position) cannot be reduced without the block cancelling its own input;
the paper's ``||J||_F^2`` includes it. The estimate is ``E_eta ||eta^T J - eta^T||^2``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def jacobian_penalty(
    block_io: list[tuple[Tensor, Tensor]],
    projections: int = 1,
    valid: Tensor | None = None,
    generator: torch.Generator | None = None,
    subtract_identity: bool = False,
) -> Tensor:
    """Estimate ``sum_l ||J(l)||_F^2`` per sequence from recorded ``(input, output)`` pairs.

    Args:
        block_io: for each block, its input ``[B, L, d]`` and output ``[B, L, d]`` from a forward
            pass with autograd enabled.
        projections: number of random projections averaged per block.
        valid: optional ``[B, L, 1]`` mask; projections are zero at padding positions (their
            outputs are zero by construction anyway).
        subtract_identity: estimate ``||J - I||_F^2`` (input and output shapes must match).

    Returns:
        A scalar: the estimate averaged over the batch's sequences.
    """
    if not block_io:
        raise ValueError("no Transformer block inputs/outputs were recorded")
    total = block_io[0][1].new_zeros(())
    batch = block_io[0][1].shape[0]
    for inp, out in block_io:
        for _ in range(projections):
            eta = torch.randn(out.shape, dtype=out.dtype, device=out.device, generator=generator)
            if valid is not None:
                eta = eta * valid
            (vjp,) = torch.autograd.grad(out, inp, grad_outputs=eta, create_graph=True)
            if subtract_identity:
                vjp = vjp - eta
            total = total + vjp.pow(2).sum()
    return total / (projections * batch)
