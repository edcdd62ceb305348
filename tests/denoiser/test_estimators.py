"""ARM and AR are unbiased: compared with the exact gradient of E[L] enumerated over all masks."""

from __future__ import annotations

import itertools

import pytest
import torch

from recdenoiser.config import DenoiserConfig, ModelConfig
from recdenoiser.denoiser import DenoiserObjective, attach_denoiser
from recdenoiser.denoiser.estimators import antithetic_masks, ar_coefficient, arm_coefficient
from recdenoiser.models import Batch, build_model


def exact_gradient(phi: torch.Tensor, f) -> torch.Tensor:
    """d/dphi of sum_z P(z; sigmoid(phi)) f(z), enumerating z in {0,1}^k."""
    phi = phi.detach().clone().requires_grad_(True)
    p = torch.sigmoid(phi)
    total = phi.new_zeros(())
    for bits in itertools.product([0.0, 1.0], repeat=phi.numel()):
        z = torch.tensor(bits)
        total = total + torch.prod(torch.where(z == 1, p, 1 - p)) * f(z)
    (grad,) = torch.autograd.grad(total, phi)
    return grad


def f_toy(z: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.7, -1.3, 2.0])
    return ((z * w).sum(-1) - 0.4) ** 2


@pytest.mark.parametrize("estimator", ["arm", "ar"])
def test_estimators_unbiased_on_toy_function(estimator: str) -> None:
    gen = torch.Generator().manual_seed(0)
    phi = torch.tensor([0.3, -1.0, 1.5])
    n = 200_000
    u = torch.rand(n, 3, generator=gen)
    z1, z2 = antithetic_masks(u, phi.expand(n, 3))
    if estimator == "arm":
        g = arm_coefficient(f_toy(z1).unsqueeze(-1), f_toy(z2).unsqueeze(-1), u)
    else:
        g = ar_coefficient(f_toy(z2).unsqueeze(-1), u)
    mean, se = g.mean(0), g.std(0) / n**0.5
    exact = exact_gradient(phi, f_toy)
    assert torch.all((mean - exact).abs() < 4 * se + 1e-4), (mean, exact, se)


def test_arm_has_lower_variance_than_ar() -> None:
    gen = torch.Generator().manual_seed(1)
    phi = torch.tensor([0.3, -1.0, 1.5])
    u = torch.rand(50_000, 3, generator=gen)
    z1, z2 = antithetic_masks(u, phi.expand_as(u))
    arm = arm_coefficient(f_toy(z1).unsqueeze(-1), f_toy(z2).unsqueeze(-1), u)
    ar = ar_coefficient(f_toy(z2).unsqueeze(-1), u)
    assert torch.all(arm.var(0) < ar.var(0))


def test_antithetic_masks_are_bernoulli_with_keep_probability() -> None:
    gen = torch.Generator().manual_seed(2)
    phi = torch.tensor([-2.0, 0.0, 1.0])
    u = torch.rand(100_000, 3, generator=gen)
    z1, z2 = antithetic_masks(u, phi.expand_as(u))
    p = torch.sigmoid(phi)
    assert torch.allclose(z1.mean(0), p, atol=0.01)
    assert torch.allclose(z2.mean(0), p, atol=0.01)


# ---------------------------------------------------------------- through the real objective
def tiny_sasrec(kind: str, estimator: str, sampling: str = "batch"):
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(hidden_size=8, num_blocks=1, num_heads=1, dropout=0.0), n_items=6, max_len=2
    )
    cfg = DenoiserConfig(
        enabled=True,
        estimator=estimator,  # type: ignore[arg-type]
        mask_kind=kind,  # type: ignore[arg-type]
        beta=0.0,
        gamma=0.0,
        jacobian=False,
        init_keep_prob=0.6,
        mask_sampling=sampling,  # type: ignore[arg-type]
    )
    attach_denoiser(model, cfg)
    with torch.no_grad():  # distinct keep probabilities per entry
        model.mask_provider.phi.copy_(torch.tensor([[[0.4, 0.0], [-0.8, 1.2]]]))
    batch = Batch(
        item_seq=torch.tensor([[1, 2], [3, 4], [2, 5]]),
        users=torch.arange(3),
        pos_items=torch.tensor([[2, 3], [4, 5], [5, 1]]),
        neg_items=torch.tensor([[[4], [1]], [[2], [6]], [[6], [3]]]),
    )
    return model, DenoiserObjective(cfg), batch


# usable entries of a causal 2x2 attention: (0,0), (1,0), (1,1)
USABLE = [(0, 0), (1, 0), (1, 1)]


def enumerated_phi_gradient(model, batch) -> torch.Tensor:
    """Exact d E[L] / d phi for a mask shared by the batch, by enumerating the 8 masks."""
    masks = model.mask_provider
    phi = masks.phi.detach().clone().requires_grad_(True)
    p = torch.sigmoid(phi[0])
    total = phi.new_zeros(())
    model.train()
    for bits in itertools.product([0.0, 1.0], repeat=3):
        keep = torch.zeros(1, 1, 2, 2)
        prob = phi.new_ones(())
        for (i, j), bit in zip(USABLE, bits, strict=True):
            keep[0, 0, i, j] = bit
            prob = prob * (p[i, j] if bit else 1 - p[i, j])
        masks.forced_keep = keep
        with torch.no_grad():
            loss = model.sequence_loss(batch).sum()
        total = total + prob * loss
    masks.forced_keep = None
    (grad,) = torch.autograd.grad(total, phi)
    return grad


@pytest.mark.parametrize(
    ("estimator", "draws", "sampling"),
    [("arm", 3000, "batch"), ("ar", 6000, "batch"), ("arm", 3000, "sequence")],
)
def test_objective_phi_gradient_is_unbiased(estimator: str, draws: int, sampling: str) -> None:
    model, objective, batch = tiny_sasrec("positional", estimator, sampling)
    torch.manual_seed(123)
    if sampling == "sequence":
        # each sequence draws its own mask: E[L] is the sum of per-sequence expectations
        exact = sum(
            enumerated_phi_gradient(model, batch.select(torch.tensor([i])))
            * (batch.select(torch.tensor([i])).pos_items != 0).sum()
            / (batch.pos_items != 0).sum()
            for i in range(len(batch))
        )
    else:
        exact = enumerated_phi_gradient(model, batch)
    grads = []
    for _ in range(draws):
        model.zero_grad()
        loss, _ = objective(model, batch)
        loss.backward()
        grads.append(model.mask_provider.phi.grad.detach().clone())
    g = torch.stack(grads)
    mean, se = g.mean(0), g.std(0) / draws**0.5
    assert mean[0, 0, 1] == 0  # a future key is never used, so it gets no gradient
    for i, j in USABLE:
        assert abs(mean[0, i, j] - exact[0, i, j]) < 4 * se[0, i, j] + 1e-4, (i, j, mean, exact)
