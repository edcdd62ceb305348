"""SSE-PT: personalised input and scores, stochastic shared embeddings only in training."""

from __future__ import annotations

import pytest
import torch

from recdenoiser.data.dataset import PAD
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.errors import ConfigError
from recdenoiser.models import Batch, build_model
from recdenoiser.models.ssept import SSEPT
from recdenoiser.training.data import TrainingSequences
from tests.helpers import dataset_from_sequences, left_padded, random_histories, tiny_model_config

N_ITEMS, N_USERS, MAX_LEN = 30, 50, 12


def make_model(**overrides: object) -> SSEPT:
    torch.manual_seed(0)
    model = build_model(
        tiny_model_config(name="ssept", **overrides),
        n_items=N_ITEMS,
        max_len=MAX_LEN,
        n_users=N_USERS,
    )
    assert isinstance(model, SSEPT)
    return model.eval()


def test_widths_and_configuration_errors() -> None:
    model = make_model(user_hidden_size=4)
    assert model.embedding.items.embedding_dim == 12
    assert model.embedding.users.embedding_dim == 4
    assert model.embedding.users.num_embeddings == N_USERS
    with pytest.raises(ConfigError, match="user_hidden_size"):
        make_model(user_hidden_size=16)
    with pytest.raises(ConfigError, match="number of users"):
        build_model(tiny_model_config(name="ssept"), n_items=N_ITEMS, max_len=MAX_LEN)


def test_scores_are_dot_products_with_item_and_user_embeddings() -> None:
    model = make_model()
    batch = Batch(
        item_seq=left_padded(random_histories(4, N_ITEMS, 2, 9), MAX_LEN),
        users=torch.tensor([0, 7, 7, 49]),
    )
    with torch.no_grad():
        hidden = super(SSEPT, model).encode(batch)[:, -1]  # the blocks' output, width d
        items = model.embedding.items.weight
        users = model.embedding.users.weight[batch.users]
        # item i for user u is represented by [e_i ; e_u]
        reps = torch.cat(
            [items.unsqueeze(0).expand(4, -1, -1), users.unsqueeze(1).expand(-1, N_ITEMS + 1, -1)],
            dim=-1,
        )
        expected = (hidden.unsqueeze(1) * reps).sum(-1)
        torch.testing.assert_close(model.score_all(batch), expected, atol=1e-5, rtol=1e-5)


def test_same_history_different_users_different_scores() -> None:
    model = make_model()
    seq = left_padded([[1, 2, 3, 4]] * 2, MAX_LEN)
    with torch.no_grad():
        scores = model.score_all(Batch(item_seq=seq, users=torch.tensor([3, 4])))
    assert not torch.allclose(scores[0], scores[1])


def test_sse_replacement_rates_match_the_configuration() -> None:
    model = make_model(sse_prob_user=0.3, sse_prob_item=0.1)
    histories = random_histories(2000, N_ITEMS, 1, MAX_LEN, seed=2)
    users = torch.randint(0, N_USERS, (2000,), generator=torch.Generator().manual_seed(0))
    batch = Batch(
        item_seq=left_padded(histories, MAX_LEN),
        users=users,
        pos_items=left_padded(histories, MAX_LEN),
    )
    out = model.training_batch(batch, torch.Generator().manual_seed(1))
    real = batch.item_seq != PAD
    # a replacement may draw the original id again (1/N), so the changed rate is slightly lower
    user_rate = (out.users != users).float().mean().item()
    assert abs(user_rate - 0.3 * (1 - 1 / N_USERS)) < 0.04, user_rate
    item_rate = (out.item_seq != batch.item_seq)[real].float().mean().item()
    assert abs(item_rate - 0.1 * (1 - 1 / N_ITEMS)) < 0.015, item_rate
    assert torch.equal(out.item_seq == PAD, ~real)  # padding stays padding
    assert torch.equal(out.pos_items, batch.pos_items)  # targets are never replaced
    assert ((out.item_seq >= 1) | ~real).all() and (out.item_seq <= N_ITEMS).all()


def test_sse_runs_in_the_training_pipeline_and_never_in_evaluation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = make_model(sse_prob_user=0.5, sse_prob_item=0.0)
    sequences = random_histories(N_USERS, N_ITEMS, 3, 10, seed=1)
    split = LeaveOneOutSplit.from_dataset(dataset_from_sequences(sequences, N_ITEMS))
    data = TrainingSequences.for_model(split, model, MAX_LEN, num_negatives=1)
    plain = TrainingSequences(split, MAX_LEN, num_negatives=1)  # same rows, no transform
    swapped = total = 0
    for sse, clean in zip(
        data.loader(batch_size=10, seed=0, bucket=False),
        plain.loader(batch_size=10, seed=0, bucket=False),
        strict=True,
    ):
        assert torch.equal(sse.item_seq, clean.item_seq)
        swapped += int((sse.users != clean.users).sum())
        total += len(sse)
    assert 0.3 < swapped / total < 0.7
    # evaluation never goes through the training transform
    from recdenoiser.evaluation import evaluate

    def forbidden(*args: object) -> Batch:
        raise AssertionError("training_batch called outside training")

    monkeypatch.setattr(model, "training_batch", forbidden)
    result = evaluate(
        model, split, stage="test", protocol="sampled", max_len=MAX_LEN, num_negatives=10, ks=(1, 5)
    )
    assert result.n_users == N_USERS
