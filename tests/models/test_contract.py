"""The bar every registered model must clear, parametrised over ``MODELS``.

A tiny generated dataset with timestamps (so time-aware models run) drives: output shapes,
padding invariance, causality (for causal models), candidate scores vs full scores, checkpoint
round trip, a finite differentiable loss on a batch built the way the trainer builds it and, for
self-attentive models, the Rec-Denoiser plug-in (objective runs and back-propagates; an
all-ones forced mask reproduces the backbone exactly).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from recdenoiser.config import DenoiserConfig, RunConfig
from recdenoiser.data.dataset import PAD, SequenceDataset
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.denoiser import AttentionMasks, DenoiserObjective, attach_denoiser
from recdenoiser.models import MODELS, Batch, SelfAttentiveRecommender, build_model, pad_left
from recdenoiser.models.base import SequentialRecommender
from recdenoiser.training.checkpoint import load_checkpoint, save_checkpoint
from recdenoiser.training.data import TrainingSequences
from tests.helpers import tiny_model_config

N_USERS, N_ITEMS, MAX_LEN, SHORT = 40, 30, 12, 6
NAMES = MODELS.names()


def timed_dataset(seed: int = 0) -> SequenceDataset:
    """Random histories of 3..15 items with increasing times (some ties, irregular gaps)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 16, N_USERS)
    items = rng.integers(1, N_ITEMS + 1, lengths.sum())
    gaps = rng.choice([0, 60, 3600, 86400, 7 * 86400], size=lengths.sum())
    starts = np.concatenate([[0], np.cumsum(lengths)])
    times = np.concatenate(
        [1_500_000_000 + np.cumsum(gaps[a:b]) for a, b in itertools.pairwise(starts)]
    )
    return SequenceDataset(
        name="timed",
        items=items,
        offsets=starts.astype(np.int64),
        user_ids=np.array([str(u) for u in range(N_USERS)]),
        item_ids=np.array([""] + [str(i) for i in range(1, N_ITEMS + 1)]),
        timestamps=times,
    )


DATASET = timed_dataset()
SPLIT = LeaveOneOutSplit.from_dataset(DATASET)


def make_model(name: str, seed: int = 0, **overrides: object) -> SequentialRecommender:
    torch.manual_seed(seed)
    config = tiny_model_config(name=name, **overrides)
    return build_model(config, n_items=N_ITEMS, max_len=MAX_LEN, n_users=N_USERS).eval()


def eval_batch(width: int, keep_last: int = MAX_LEN, users: int = 8) -> Batch:
    """The test inputs of the first ``users`` users: last ``keep_last`` items, ``width`` wide."""
    rows = np.arange(users)
    hist = [SPLIT.eval_input(int(u), "test")[-keep_last:] for u in rows]
    times = [SPLIT.eval_input_times(int(u), "test")[-keep_last:] for u in rows]  # type: ignore[index]
    return Batch(
        item_seq=torch.from_numpy(pad_left(hist, width)),
        users=torch.from_numpy(rows),
        time_seq=torch.from_numpy(pad_left(times, width)),
    )


def trainer_batch(model: SequentialRecommender, seed: int = 0) -> Batch:
    data = TrainingSequences.for_model(SPLIT, model, MAX_LEN, model.config.num_negatives)
    return next(iter(data.loader(batch_size=16, seed=seed)))


@pytest.mark.parametrize("name", NAMES)
def test_output_shapes(name: str) -> None:
    model = make_model(name)
    batch = eval_batch(MAX_LEN)
    b = len(batch)
    with torch.no_grad():
        hidden = model.encode(batch)
        table = model.item_table()
        assert hidden.shape == (b, MAX_LEN, table.shape[1])
        assert table.shape[0] == N_ITEMS + 1
        assert model.score_all(batch).shape == (b, N_ITEMS + 1)
        candidates = torch.randint(1, N_ITEMS + 1, (b, 7))
        assert model.score_candidates(batch, candidates).shape == (b, 7)


def assert_padding_invariant(model: SequentialRecommender) -> None:
    """Extra left padding changes neither the scores nor the hidden states of real positions."""
    with torch.no_grad():
        narrow = model.score_all(eval_batch(SHORT, keep_last=SHORT))
        wide = model.score_all(eval_batch(MAX_LEN, keep_last=SHORT))
        hidden_narrow = model.encode(eval_batch(SHORT, keep_last=SHORT))
        hidden_wide = model.encode(eval_batch(MAX_LEN, keep_last=SHORT))
    torch.testing.assert_close(narrow, wide, atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden_narrow, hidden_wide[:, -SHORT:], atol=1e-5, rtol=0)


def assert_causal(model: SequentialRecommender) -> None:
    """Changing the item at position t changes no earlier output, and changes position t's."""
    batch = eval_batch(MAX_LEN, users=1)
    start = int((batch.item_seq[0] == PAD).sum())
    with torch.no_grad():
        base = model.encode(batch)
        for t in range(start, MAX_LEN):
            changed = batch.item_seq.clone()
            changed[0, t] = changed[0, t] % N_ITEMS + 1
            out = model.encode(Batch(changed, batch.users, time_seq=batch.time_seq))
            torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
            assert not torch.allclose(out[:, t], base[:, t])


@pytest.mark.parametrize("name", NAMES)
def test_padding_invariance(name: str) -> None:
    assert_padding_invariant(make_model(name))


@pytest.mark.parametrize("name", [n for n in NAMES if MODELS.get(n).causal])
def test_causality(name: str) -> None:
    assert_causal(make_model(name))


@pytest.mark.parametrize("name", NAMES)
def test_score_candidates_matches_score_all(name: str) -> None:
    model = make_model(name)
    batch = eval_batch(MAX_LEN)
    candidates = torch.randint(1, N_ITEMS + 1, (len(batch), 9))
    with torch.no_grad():
        gathered = model.score_all(batch).gather(1, candidates)
        direct = model.score_candidates(batch, candidates)
    torch.testing.assert_close(direct, gathered, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    model = make_model(name, seed=3)
    config = RunConfig.model_validate(
        {"data": {"max_len": MAX_LEN}, "model": model.config.model_dump()}
    )
    save_checkpoint(tmp_path / "best.pt", model, config, DATASET)
    loaded = load_checkpoint(tmp_path / "best.pt")
    assert type(loaded.model) is type(model)
    batch = eval_batch(MAX_LEN)
    with torch.no_grad():
        assert torch.equal(loaded.model.score_all(batch), model.score_all(batch))


@pytest.mark.parametrize("name", NAMES)
def test_training_loss_is_finite_and_differentiable(name: str) -> None:
    model = make_model(name, dropout=0.1).train()
    batch = trainer_batch(model)
    assert batch.pos_items is not None and bool((batch.pos_items != PAD).any())
    losses = model.sequence_loss(batch)
    assert losses.shape == (len(batch),)
    assert torch.isfinite(losses).all()
    losses.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


SELF_ATTENTIVE = [n for n in NAMES if issubclass(MODELS.get(n), SelfAttentiveRecommender)]


def assert_denoiser_trains(model: SequentialRecommender) -> None:
    """The Rec-Denoiser objective runs on ``model`` and back-propagates to masks and weights."""
    assert isinstance(model, SelfAttentiveRecommender)
    config = DenoiserConfig(enabled=True)
    attach_denoiser(model, config)
    loss, logs = DenoiserObjective(config)(model, trainer_batch(model))
    assert torch.isfinite(loss) and "mask_l0" in logs and logs["jacobian"] > 0
    loss.backward()
    masks = model.mask_provider
    assert isinstance(masks, AttentionMasks)
    assert masks.phi.grad is not None and masks.phi.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", SELF_ATTENTIVE)
def test_denoiser_objective_runs_and_backpropagates(name: str) -> None:
    assert_denoiser_trains(make_model(name, dropout=0.1).train())


@pytest.mark.parametrize("name", SELF_ATTENTIVE)
def test_all_ones_forced_mask_is_the_backbone(name: str) -> None:
    assert_all_ones_mask_is_backbone(
        make_model(name, fused_attention=False), make_model(name, fused_attention=False)
    )


def assert_all_ones_mask_is_backbone(
    backbone: SequentialRecommender, denoised: SequentialRecommender
) -> None:
    """Two identical models; the second gets masks forced to 1: outputs must be equal."""
    assert isinstance(denoised, SelfAttentiveRecommender)
    attach_denoiser(denoised, DenoiserConfig(enabled=True))
    denoised.load_state_dict(backbone.state_dict(), strict=False)
    masks = denoised.mask_provider
    assert isinstance(masks, AttentionMasks)
    masks.forced_keep = torch.ones(len(denoised.encoder.blocks), 1, MAX_LEN, MAX_LEN)
    denoised.eval()
    batch = eval_batch(MAX_LEN)
    with torch.no_grad():
        assert torch.equal(backbone.encode(batch), denoised.encode(batch))
        assert torch.equal(backbone.score_all(batch), denoised.score_all(batch))


def test_packaged_configs_build_their_models() -> None:
    from importlib import resources

    from recdenoiser.config import load_config
    from recdenoiser.training.build import build_recommender

    folder = resources.files("recdenoiser") / "configs"
    names = set()
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml"):
            config = load_config(Path(str(entry)))
            names.add(config.model.name)
            model = build_recommender(config, n_items=N_ITEMS, n_users=N_USERS)
            assert type(model) is MODELS.get(config.model.name)
    assert names == set(NAMES)  # every registered model has a packaged configuration


@pytest.mark.parametrize("denoised", [False, True])
@pytest.mark.parametrize("norm", ["pre", "post", "sasrec"])
def test_last_position_fast_path_matches_full_encoding(denoised: bool, norm: str) -> None:
    from recdenoiser.config import DenoiserConfig, ModelConfig
    from recdenoiser.denoiser import attach_denoiser
    from recdenoiser.models import Batch, build_model

    torch.manual_seed(0)
    model = build_model(
        ModelConfig(hidden_size=16, num_blocks=2, num_heads=2, dropout=0.1, norm=norm), 30, 12
    )
    if denoised:
        attach_denoiser(model, DenoiserConfig(enabled=True))
        with torch.no_grad():
            model.mask_provider.phi.uniform_(-2, 2)
    model.eval()
    seq = torch.randint(1, 31, (5, 12))
    seq[:2, :4] = 0
    batch = Batch(item_seq=seq, users=torch.arange(5))
    fast = model.user_vector(batch)
    full = model.encode(batch)[:, -1, :]
    assert torch.allclose(fast, full, atol=1e-5)
