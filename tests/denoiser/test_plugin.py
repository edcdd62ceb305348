"""Rec-Denoiser as a plug-in: backbone recovery, causality, padding, sparsity pressure."""

from __future__ import annotations

import pytest
import torch

from recdenoiser.config import DenoiserConfig, ModelConfig
from recdenoiser.denoiser import AttentionMasks, DenoiserObjective, attach_denoiser
from recdenoiser.models import Batch, build_model

N_ITEMS, MAX_LEN = 30, 12


def make_model(denoiser: DenoiserConfig | None = None, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(
        ModelConfig(hidden_size=16, num_blocks=2, num_heads=2, dropout=0.0, fused_attention=False),
        n_items=N_ITEMS,
        max_len=MAX_LEN,
    )
    if denoiser is not None:
        attach_denoiser(model, denoiser)
    return model


def batch_of(rows: list[list[int]], length: int = MAX_LEN) -> Batch:
    seq = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        seq[i, length - len(r) :] = torch.tensor(r)
    return Batch(item_seq=seq, users=torch.arange(len(rows)))


def training_batch(seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, N_ITEMS + 1, (8, MAX_LEN), generator=gen)
    seq[:4, :5] = 0  # some left padding
    pos = torch.roll(seq, -1, 1)
    pos[:, -1] = torch.randint(1, N_ITEMS + 1, (8,), generator=gen)
    pos[seq == 0] = 0
    neg = torch.randint(1, N_ITEMS + 1, (8, MAX_LEN, 1), generator=gen)
    return Batch(item_seq=seq, users=torch.arange(8), pos_items=pos, neg_items=neg)


def test_all_ones_mask_recovers_the_backbone_exactly() -> None:
    backbone = make_model()
    denoised = make_model(DenoiserConfig(enabled=True, beta=0.0, gamma=0.0))
    denoised.load_state_dict(backbone.state_dict(), strict=False)
    masks = denoised.mask_provider
    assert isinstance(masks, AttentionMasks)
    masks.forced_keep = torch.ones(2, 1, MAX_LEN, MAX_LEN)
    batch = training_batch()
    for model in (backbone, denoised):
        model.eval()
    assert torch.equal(backbone.score_all(batch), denoised.score_all(batch))
    # the binary inference mask of confident logits is all ones too
    masks.forced_keep = None
    masks.config = masks.config.model_copy(update={"inference_mask": "binary"})
    with torch.no_grad():
        masks.phi.fill_(5.0)
    assert torch.equal(backbone.score_all(batch), denoised.score_all(batch))
    # and the objective with beta = gamma = 0 trains on the backbone loss
    backbone.train()
    torch.manual_seed(9)
    expected = backbone.sequence_loss(batch).sum()
    objective = DenoiserObjective(DenoiserConfig(enabled=True, masks=False, beta=0, gamma=0))
    torch.manual_seed(9)
    loss, _ = objective(backbone, batch)
    assert torch.equal(loss, expected)


@pytest.mark.parametrize("kind", ["positional", "input_dependent"])
@pytest.mark.parametrize("inference", ["soft", "binary"])
def test_causality_and_padding_invariance_with_denoiser(kind: str, inference: str) -> None:
    cfg = DenoiserConfig(enabled=True, mask_kind=kind, inference_mask=inference)  # type: ignore[arg-type]
    model = make_model(cfg).eval()
    with torch.no_grad():  # mixed keep probabilities so some entries are pruned
        model.mask_provider.phi.uniform_(-2, 2)
    short = batch_of([[3, 7, 9, 4]], length=6)
    long = batch_of([[3, 7, 9, 4]], length=MAX_LEN)
    assert torch.allclose(model.score_all(short), model.score_all(long), atol=1e-5)
    a = model.encode(batch_of([[3, 7, 9, 4, 5, 6]]))
    b = model.encode(batch_of([[3, 7, 9, 4, 5, 11]]))
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_inference_mask_thresholds_at_one_half() -> None:
    model = make_model(DenoiserConfig(enabled=True, inference_mask="soft")).eval()
    masks = model.mask_provider
    logits = torch.tensor([-1.0, 0.0, 0.5, 3.0])
    soft = masks.inference_keep(logits)
    assert soft[0] == 0 and soft[1] == 0
    assert torch.allclose(soft[2:], torch.sigmoid(logits[2:]))
    masks.config = masks.config.model_copy(update={"inference_mask": "binary"})
    assert torch.equal(masks.inference_keep(logits), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    masks.config = masks.config.model_copy(update={"inference_mask": "expected"})
    assert torch.allclose(masks.inference_keep(logits), torch.sigmoid(logits))


def mean_keep_probability(beta: float, steps: int = 60) -> float:
    cfg = DenoiserConfig(enabled=True, beta=beta, gamma=0.0, jacobian=False, init_keep_prob=0.7)
    model = make_model(cfg, seed=1).train()
    objective = DenoiserObjective(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(steps):
        loss, _ = objective(model, training_batch(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    usable = torch.ones(MAX_LEN, MAX_LEN).tril().bool()
    return torch.sigmoid(model.mask_provider.phi.detach())[:, usable].mean().item()


def test_beta_lowers_expected_mask_density() -> None:
    assert mean_keep_probability(beta=0.1) < mean_keep_probability(beta=0.0) - 0.1


@pytest.mark.parametrize("kind", ["positional", "input_dependent"])
@pytest.mark.parametrize("estimator", ["arm", "ar"])
def test_training_step_updates_masks_and_logs(kind: str, estimator: str) -> None:
    cfg = DenoiserConfig(enabled=True, mask_kind=kind, estimator=estimator)  # type: ignore[arg-type]
    model = make_model(cfg).train()
    loss, logs = DenoiserObjective(cfg)(model, training_batch())
    loss.backward()
    assert set(logs) == {"loss", "jacobian", "mask_l0", "mask_density"}
    assert model.mask_provider.phi.grad is not None
    assert model.mask_provider.phi.grad.abs().sum() > 0
    if kind == "input_dependent":
        assert model.mask_provider.query.weight.grad.abs().sum() > 0
    assert not model.encoder.record_io and model.encoder.block_io == []


def test_ablation_switches() -> None:
    only_jacobian = make_model(DenoiserConfig(enabled=True, masks=False))
    assert only_jacobian.mask_provider is None
    _, logs = DenoiserObjective(DenoiserConfig(enabled=True, masks=False))(
        only_jacobian.train(), training_batch()
    )
    assert set(logs) == {"loss", "jacobian"}
    cfg = DenoiserConfig(enabled=True, jacobian=False)
    only_masks = make_model(cfg).train()
    _, logs = DenoiserObjective(cfg)(only_masks, training_batch())
    assert "jacobian" not in logs and "mask_l0" in logs


def test_jacobian_penalty_trains_through_the_fused_attention_model() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=16, num_blocks=2, dropout=0.1), N_ITEMS, MAX_LEN)
    cfg = DenoiserConfig(enabled=True, masks=False)
    loss, logs = DenoiserObjective(cfg)(model.train(), training_batch())
    loss.backward()
    assert logs["jacobian"] > 0


@pytest.mark.parametrize("masks_on", [True, False])
def test_jacobian_on_a_subsample_of_the_batch(masks_on: bool) -> None:
    cfg = DenoiserConfig(enabled=True, masks=masks_on, jacobian_sample=0.25)
    model = make_model(cfg).train()
    loss, logs = DenoiserObjective(cfg)(model, training_batch())
    loss.backward()
    assert logs["jacobian"] > 0
    assert not model.encoder.record_io and model.encoder.block_io == []
    if masks_on:
        assert model.mask_provider.noise is None


def test_jacobian_every_k_steps_is_weighted_by_k() -> None:
    cfg = DenoiserConfig(enabled=True, masks=False, jacobian_every=3)
    model = make_model(cfg).train()
    objective = DenoiserObjective(cfg)
    seen = [("jacobian" in objective(model, training_batch(i))[1]) for i in range(6)]
    assert seen == [True, False, False, True, False, False]
    torch.manual_seed(0)
    loss_k, logs = DenoiserObjective(cfg)(model, training_batch())
    torch.manual_seed(0)
    base = model.sequence_loss(training_batch()).sum()
    assert torch.allclose(loss_k, base + cfg.gamma * 3 * logs["jacobian"], rtol=1e-5)
