"""The Rec-Denoiser training objective: ``L_backbone + beta * R_M + gamma * R_J``.

One training step with the ARM estimator:

1. draw ``U`` for every layer's mask (one ``n x n`` draw per batch as in the paper, or one per
   sequence with ``mask_sampling="sequence"`` or input-dependent masks);
2. forward with ``Z2 = 1[U < sigmoid(Φ)]`` with autograd: the model weights get ordinary
   back-propagation through this sampled hard mask, and the block inputs/outputs of this pass give
   the Jacobian penalty;
3. forward with the antithetic ``Z1 = 1[U > sigmoid(-Φ)]`` under ``torch.no_grad()`` with the
   same dropout noise (the random state is replayed), for the loss value only;
4. the logits receive ``(L(Z1) - L(Z2)) * (U - 1/2)`` through a surrogate term, and
   ``beta * d R_M / dΦ`` exactly, where ``R_M`` is the expected number of kept attention entries
   (``sum sigmoid(Φ)`` over the entries a sequence can use: causal and not padding).

AR skips step 3 and uses ``L(Z2) * (1 - 2U)``. Running the second ARM pass without autograd does
not change the estimator (the loss value is identical); it only saves memory and time.

``jacobian_sample < 1`` estimates ``R_J`` on a random subset of the batch's sequences, in a
separate forward pass with the same mask draw: still unbiased for the per-sequence mean, with
more variance, and the double backward costs only that fraction of the batch.
``jacobian_every = k`` computes the penalty on every k-th step only, weighted by k: the average
gradient over k steps is unchanged, each step's is noisier, and the double backward (the dearest
part of a step) runs k times less often.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from recdenoiser.config import DenoiserConfig
from recdenoiser.denoiser.estimators import ar_coefficient, arm_coefficient
from recdenoiser.denoiser.jacobian import jacobian_penalty
from recdenoiser.denoiser.masks import AttentionMasks
from recdenoiser.models.base import SelfAttentiveRecommender, SequentialRecommender
from recdenoiser.models.batch import Batch


def _rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[Tensor, Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def usable_entries(allowed: Tensor, padding_mask: Tensor) -> Tensor:
    """``[B, L, L]`` bool: attention entries that influence the output (real query, allowed key)."""
    return allowed & padding_mask.unsqueeze(-1)


class DenoiserObjective:
    def __init__(self, config: DenoiserConfig):
        self.config = config
        self.steps = 0  # training steps seen, for jacobian_every

    def __call__(
        self, model: SequentialRecommender, batch: Batch
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if not isinstance(model, SelfAttentiveRecommender):
            raise TypeError("the denoiser objective needs a self-attentive model")
        cfg = self.config
        masks = model.mask_provider if cfg.masks else None
        assert masks is None or isinstance(masks, AttentionMasks)
        use_jacobian = (
            cfg.jacobian
            and cfg.gamma > 0
            and model.training
            and self.steps % cfg.jacobian_every == 0
        )
        if model.training:
            self.steps += 1
        # with a sub-sample, the Jacobian gets its own pass; otherwise the main pass is recorded
        model.encoder.record_io = use_jacobian and cfg.jacobian_sample >= 1.0
        self._noise: Tensor | None = None
        logs: dict[str, Tensor] = {}
        try:
            if masks is None:
                per_seq = model.sequence_loss(batch)
                loss = per_seq.sum() * batch.loss_scale
            else:
                loss, per_seq = self._masked_step(model, masks, batch, logs)
            logs["loss"] = per_seq.sum().detach()
            if use_jacobian:
                r_j = self._jacobian(model, batch, masks)
                loss = loss + cfg.gamma * cfg.jacobian_every * r_j
                logs["jacobian"] = r_j.detach()
        finally:
            model.encoder.record_io = False
            model.encoder.block_io = []
        return loss, logs

    def _jacobian(
        self, model: SelfAttentiveRecommender, batch: Batch, masks: AttentionMasks | None
    ) -> Tensor:
        cfg = self.config
        if cfg.jacobian_sample < 1.0:
            b = len(batch)
            rows = torch.randperm(b, device=batch.item_seq.device)[
                : max(1, math.ceil(cfg.jacobian_sample * b))
            ]
            batch = batch.select(rows)
            model.encoder.record_io = True
            if masks is not None and self._noise is not None:
                noise = self._noise
                masks.noise = noise[:, rows] if noise.shape[1] == b else noise
            try:
                model.encode(batch)
            finally:
                if masks is not None:
                    masks.noise, masks.last_logits, masks.last_allowed = None, None, None
        valid = batch.padding_mask.unsqueeze(-1).to(model.item_table().dtype)
        return jacobian_penalty(
            model.encoder.block_io,
            cfg.jacobian_projections,
            valid,
            subtract_identity=cfg.jacobian_target == "residual",
        )

    def _masked_step(
        self,
        model: SelfAttentiveRecommender,
        masks: AttentionMasks,
        batch: Batch,
        logs: dict[str, Tensor],
    ) -> tuple[Tensor, Tensor]:
        cfg = self.config
        b, length = batch.item_seq.shape
        per_sequence = cfg.mask_sampling == "sequence" or masks.input_dependent
        device = batch.item_seq.device
        u = torch.rand(masks.num_layers, b if per_sequence else 1, length, length, device=device)
        masks.noise = u
        self._noise = u
        try:
            state = _rng_state(device)
            masks.draw = 2
            loss_z2 = model.sequence_loss(batch)  # [B], gradients for the weights
            logits, allowed = masks.last_logits, masks.last_allowed
            assert logits is not None and allowed is not None
            if cfg.estimator == "arm":
                jacobian_io = model.encoder.block_io
                record = model.encoder.record_io
                _set_rng_state(state, device)
                masks.draw = 1
                model.encoder.record_io = False
                with torch.no_grad():
                    loss_z1 = model.sequence_loss(batch)
                model.encoder.record_io, model.encoder.block_io = record, jacobian_io
        finally:
            masks.noise, masks.last_logits, masks.last_allowed = None, None, None
            masks.draw = 2
        usable = usable_entries(allowed, batch.padding_mask)  # [B, L, L]
        if per_sequence:
            shape = (1, b, 1, 1)
            l2 = loss_z2.detach().view(shape)
            where = usable.unsqueeze(0)
        else:
            l2 = loss_z2.detach().sum().view(1, 1, 1, 1)
            where = usable.any(0, keepdim=True).unsqueeze(0)
        l2 = l2 * batch.loss_scale
        if cfg.estimator == "arm":
            loss_z1 = loss_z1 * batch.loss_scale
            l1 = loss_z1.view(shape) if per_sequence else loss_z1.sum().view(1, 1, 1, 1)
            coef = arm_coefficient(l1, l2, u)
        else:
            coef = ar_coefficient(l2, u)
        coef = coef * where.to(coef.dtype)
        surrogate = (logits * coef.detach()).sum()
        # expected L0 norm: kept entries per sequence, summed over layers, averaged over sequences
        prob = torch.sigmoid(logits)  # [layers, B or 1, L, L]
        density_num = (prob * usable.unsqueeze(0).to(prob.dtype)).sum()
        r_m = density_num / b
        logs["mask_l0"] = r_m.detach()
        logs["mask_density"] = (
            density_num / (usable.sum() * masks.num_layers).clamp_min(1)
        ).detach()
        loss = loss_z2.sum() * batch.loss_scale + surrogate + cfg.beta * r_m
        return loss, loss_z2
