"""Unbiased gradient estimators for Bernoulli mask logits.

Both return the coefficient ``g`` such that ``g`` is an unbiased estimate of
``d E_{Z ~ Bernoulli(sigmoid(phi))}[L(Z)] / d phi``; training back-propagates it into the logits
with the surrogate ``sum(phi * g.detach())``.

* ARM (augment-REINFORCE-merge, Yin & Zhou 2019): with ``U ~ Uniform(0, 1)``,
  ``Z1 = 1[U > sigmoid(-phi)]``, ``Z2 = 1[U < sigmoid(phi)]``:
  ``g = (L(Z1) - L(Z2)) * (U - 1/2)``. Two evaluations of the loss with antithetic masks.
* AR (augment-REINFORCE): ``g = L(Z2) * (1 - 2U)``. One evaluation, higher variance.
"""

from __future__ import annotations

from torch import Tensor


def arm_coefficient(loss_z1: Tensor, loss_z2: Tensor, u: Tensor) -> Tensor:
    """``(L(Z1) - L(Z2)) * (U - 1/2)``; losses broadcast against ``u``."""
    return (loss_z1 - loss_z2) * (u - 0.5)


def ar_coefficient(loss_z2: Tensor, u: Tensor) -> Tensor:
    """``L(Z2) * (1 - 2U)``; the loss broadcasts against ``u``."""
    return loss_z2 * (1.0 - 2.0 * u)


def antithetic_masks(u: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(Z1, Z2)`` as float tensors of 0/1 for noise ``u`` and ``logits`` of the same shape."""
    import torch

    z1 = (u > torch.sigmoid(-logits)).to(logits.dtype)
    z2 = (u < torch.sigmoid(logits)).to(logits.dtype)
    return z1, z2
