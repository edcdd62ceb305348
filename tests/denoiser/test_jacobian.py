"""The random-projection Jacobian penalty matches the exact Frobenius norm and trains the model."""

from __future__ import annotations

import torch

from recdenoiser.denoiser.jacobian import jacobian_penalty
from recdenoiser.models.attention import attention_allowed
from recdenoiser.models.blocks import TransformerBlock


def tiny_block() -> tuple[TransformerBlock, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    block = TransformerBlock(hidden_size=4, num_heads=2, dropout=0.0).eval()
    padding = torch.tensor([[True, True, True]])
    allowed = attention_allowed(padding, causal=True)
    valid = padding.unsqueeze(-1).float()
    return block, allowed, valid


def test_estimate_matches_exact_frobenius_norm() -> None:
    block, allowed, valid = tiny_block()
    x = torch.randn(1, 3, 4)
    jac = torch.autograd.functional.jacobian(lambda inp: block(inp, allowed, valid), x)
    exact = jac.pow(2).sum()
    inp = x.clone().requires_grad_(True)
    out = block(inp, allowed, valid)
    gen = torch.Generator().manual_seed(1)
    estimate = jacobian_penalty([(inp, out)], projections=20_000, generator=gen)
    assert abs(estimate.item() - exact.item()) / exact.item() < 0.03


def test_residual_target_matches_exact_norm_of_jacobian_minus_identity() -> None:
    block, allowed, valid = tiny_block()
    x = torch.randn(1, 3, 4)
    jac = torch.autograd.functional.jacobian(lambda inp: block(inp, allowed, valid), x)
    identity = torch.eye(12).view(1, 3, 4, 1, 3, 4)
    exact = (jac - identity).pow(2).sum()
    assert exact < jac.pow(2).sum()  # the identity is a large part of a residual block's norm
    inp = x.clone().requires_grad_(True)
    out = block(inp, allowed, valid)
    gen = torch.Generator().manual_seed(1)
    estimate = jacobian_penalty(
        [(inp, out)], projections=20_000, generator=gen, subtract_identity=True
    )
    assert abs(estimate.item() - exact.item()) / exact.item() < 0.03


def test_penalty_is_mean_over_sequences_and_sums_blocks() -> None:
    block, allowed, valid = tiny_block()
    x = torch.randn(1, 3, 4)
    x2 = torch.cat([x, x])  # two identical sequences: the per-sequence mean is unchanged
    allowed2, valid2 = allowed.expand(2, -1, -1), valid.expand(2, -1, -1)
    inp1, inp2 = x.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    out1, out2 = block(inp1, allowed, valid), block(inp2, allowed2, valid2)
    est1 = jacobian_penalty([(inp1, out1)], 5000, generator=torch.Generator().manual_seed(3))
    est2 = jacobian_penalty([(inp2, out2)], 5000, generator=torch.Generator().manual_seed(4))
    assert abs(est1.item() - est2.item()) / est1.item() < 0.05
    both = jacobian_penalty(
        [(inp1, out1), (inp1, out1)], 5000, generator=torch.Generator().manual_seed(5)
    )
    assert abs(both.item() - 2 * est1.item()) / est1.item() < 0.1


def test_penalty_gradient_reaches_block_weights() -> None:
    block, allowed, valid = tiny_block()
    block.train()
    inp = torch.randn(2, 3, 4, requires_grad=True)
    out = block(inp, allowed.expand(2, -1, -1), valid.expand(2, -1, -1), explicit_attention=True)
    jacobian_penalty([(inp, out)], projections=1).backward()
    grads = [p.grad for p in block.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
