"""FPMC, GRU4Rec, Caser and the pairwise losses, checked against hand computations.

Shapes, padding invariance, causality, candidate scores and checkpoints are covered for every
registered model by ``test_contract.py``; training quality by ``tests/training/test_backbones.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from recdenoiser.config import RunConfig
from recdenoiser.data.dataset import PAD
from recdenoiser.errors import ConfigError
from recdenoiser.models import Batch, build_model
from recdenoiser.models.base import SequentialRecommender
from recdenoiser.models.caser import Caser
from recdenoiser.models.fpmc import FPMC
from recdenoiser.models.gru4rec import GRU4Rec
from recdenoiser.models.losses import LOSSES, NEEDS_NEGATIVES
from recdenoiser.training.build import build_recommender
from tests.helpers import left_padded, random_histories, tiny_model_config

N_ITEMS, N_USERS, MAX_LEN = 30, 10, 12


def make_model(name: str, **overrides: object) -> SequentialRecommender:
    torch.manual_seed(0)
    config = tiny_model_config(name=name, **overrides)
    return build_model(config, n_items=N_ITEMS, max_len=MAX_LEN, n_users=N_USERS).eval()


def history_batch(histories: list[list[int]], width: int = MAX_LEN) -> Batch:
    return Batch(item_seq=left_padded(histories, width), users=torch.arange(len(histories)))


HISTORIES = random_histories(6, N_ITEMS, 1, MAX_LEN, seed=3)


# ------------------------------------------------------------------------------- losses
def tiny_loss_inputs() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Two sequences of two positions; the first position of sequence 0 has no target."""
    hidden = torch.tensor([[[9.0, 9.0], [1.0, 0.5]], [[0.2, -1.0], [-0.5, 2.0]]])
    items = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5], [0.3, 0.3]])
    pos = torch.tensor([[PAD, 1], [2, 3]])
    neg = torch.tensor([[[PAD, PAD], [2, 3]], [[1, 3], [1, 2]]])
    return hidden, items, pos, neg


def dot(h: list[float], i: list[float]) -> float:
    return sum(a * b for a, b in zip(h, i, strict=True))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def by_hand(token: object) -> list[float]:
    """Per-sequence sums of ``token(r_pos, [r_neg...])`` over target positions / #targets."""
    hidden, items, pos, neg = (t.tolist() for t in tiny_loss_inputs())
    sums, n_targets = [0.0, 0.0], 0
    for b in range(2):
        for t in range(2):
            if pos[b][t] == PAD:
                continue
            n_targets += 1
            r_pos = dot(hidden[b][t], items[pos[b][t]])
            r_neg = [dot(hidden[b][t], items[j]) for j in neg[b][t]]
            sums[b] += token(r_pos, r_neg)  # type: ignore[operator]
    return [s / n_targets for s in sums]


def bpr_token(r_pos: float, r_neg: list[float]) -> float:
    return sum(-math.log(sigmoid(r_pos - r)) for r in r_neg) / len(r_neg)


def top1_token(r_pos: float, r_neg: list[float]) -> float:
    return sum(sigmoid(r - r_pos) + sigmoid(r * r) for r in r_neg) / len(r_neg)


@pytest.mark.parametrize(("name", "token"), [("bpr", bpr_token), ("top1", top1_token)])
def test_pairwise_losses_match_hand_computation(name: str, token: object) -> None:
    assert NEEDS_NEGATIVES[name]
    loss = LOSSES.get(name)(*tiny_loss_inputs())
    assert loss.shape == (2,)
    torch.testing.assert_close(loss, torch.tensor(by_hand(token)), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["bpr", "top1"])
def test_pairwise_losses_ignore_pad_targets(name: str) -> None:
    hidden, items, pos, neg = tiny_loss_inputs()
    hidden.requires_grad_(True)
    loss = LOSSES.get(name)(hidden, items, pos, neg)
    loss.sum().backward()
    assert hidden.grad is not None
    assert torch.equal(hidden.grad[0, 0], torch.zeros(2))  # the PAD target's position
    # whatever the hidden state and negatives at a PAD target, the loss is the same
    other_hidden, other_neg = hidden.detach().clone(), neg.clone()
    other_hidden[0, 0] = torch.tensor([-50.0, 3.0])
    other_neg[0, 0] = torch.tensor([1, 2])
    again = LOSSES.get(name)(other_hidden, items, pos, other_neg)
    torch.testing.assert_close(again, loss.detach())


def test_new_losses_are_configurable() -> None:
    for name in ("bpr", "top1"):
        assert tiny_model_config(name="gru4rec", loss=name).loss == name


# --------------------------------------------------------------------------------- FPMC
def test_fpmc_scores_are_the_two_factorizations() -> None:
    model = make_model("fpmc")
    assert isinstance(model, FPMC)
    batch = Batch(item_seq=left_padded([[4, 7, 2], [5]], 4), users=torch.tensor([3, 8]))
    with torch.no_grad():
        scores = model.score_all(batch)
        v_ui, v_iu = model.user_item.weight, model.item_user.weight
        v_il, v_li = model.item_last.weight, model.last_item.weight
        for row, (user, last) in enumerate([(3, 2), (8, 5)]):
            for item in range(1, N_ITEMS + 1):
                expected = v_ui[user] @ v_iu[item] + v_il[item] @ v_li[last]
                torch.testing.assert_close(scores[row, item], expected, atol=1e-6, rtol=1e-6)
        # earlier items only give training targets: position t scores with l = s_t
        hidden = model.encode(batch)
        expected_t = v_ui[3] @ v_iu[9] + v_il[9] @ v_li[7]
        torch.testing.assert_close(hidden[0, 2] @ model.item_table()[9], expected_t)


def test_models_with_user_embeddings_need_the_user_count() -> None:
    for name in ("fpmc", "caser"):
        with pytest.raises(ConfigError, match="number of users"):
            build_model(tiny_model_config(name=name), n_items=N_ITEMS, max_len=MAX_LEN)


# ------------------------------------------------------------------------------ GRU4Rec
def test_gru4rec_ignores_left_padding_and_matches_a_plain_gru() -> None:
    model = make_model("gru4rec", num_blocks=2)
    assert isinstance(model, GRU4Rec)
    with torch.no_grad():
        narrow = model.encode(history_batch(HISTORIES, MAX_LEN))
        wide = model.encode(history_batch(HISTORIES, MAX_LEN + 7))[:, 7:]
        torch.testing.assert_close(narrow, wide, atol=1e-6, rtol=0)
        for row, history in enumerate(HISTORIES):
            # the history alone, unpadded, through the same embedding and GRU
            x = model.items.weight[torch.tensor(history)].unsqueeze(0)
            out, _ = model.gru(x)
            got = narrow[row, MAX_LEN - len(history) :]
            torch.testing.assert_close(got[:, :-1], out[0], atol=1e-6, rtol=0)
            assert torch.equal(got[:, -1], torch.ones(len(history)))  # the bias coordinate
            assert not narrow[row, : MAX_LEN - len(history)].any()  # zero at padding


def test_gru4rec_scores_include_the_output_bias() -> None:
    model = make_model("gru4rec")
    assert isinstance(model, GRU4Rec)
    with torch.no_grad():
        model.output_bias.copy_(torch.linspace(-1, 1, N_ITEMS + 1))
        batch = history_batch(HISTORIES)
        hidden = model.encode(batch)[:, -1, :-1]
        expected = hidden @ model.output.T + model.output_bias
        torch.testing.assert_close(model.score_all(batch), expected, atol=1e-6, rtol=1e-6)


# -------------------------------------------------------------------------------- Caser
def caser_by_window(model: Caser, window: Tensor, user: int) -> Tensor:
    """The paper's Caser on one ``L x d`` window (rows oldest first): ``[z ; P_u ; 1]``."""
    length = model.window
    rows = []
    for h, conv in enumerate(model.horizontal, start=1):
        # conv.weight [n_h, d, h]: filter k applied to rows j..j+h-1 of the window
        values = torch.stack(
            [
                torch.einsum("fdk,kd->f", conv.weight, window[j : j + h]) + conv.bias
                for j in range(length - h + 1)
            ]
        )
        rows.append(torch.relu(values).max(0).values)
    w_v = model.vertical.weight[:, 0, :]  # [n_v, L]
    vertical = w_v @ window + model.vertical.bias.unsqueeze(-1)  # [n_v, d]
    o = torch.cat([vertical.reshape(-1), *rows])
    z = torch.relu(model.dense(o))
    return torch.cat([z, model.users.weight[user], torch.ones(1)])


def test_caser_matches_the_per_window_computation() -> None:
    model = make_model("caser", caser_window=3, caser_h_filters=2, caser_v_filters=2)
    assert isinstance(model, Caser)
    batch = history_batch(HISTORIES)
    with torch.no_grad():
        hidden = model.encode(batch)
        for row, history in enumerate(HISTORIES):
            padded = [PAD] * (model.window - 1) + history
            for t in range(len(history)):
                items = torch.tensor(padded[t : t + model.window])
                window = model.items.weight[items]  # PAD rows are zero
                expected = caser_by_window(model, window, row)
                got = hidden[row, MAX_LEN - len(history) + t]
                torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.user_vector(batch), hidden[:, -1], atol=1e-6, rtol=0)


def test_caser_position_sees_only_its_window() -> None:
    model = make_model("caser", caser_window=3)
    assert isinstance(model, Caser)
    seq = torch.arange(1, MAX_LEN + 1).unsqueeze(0)
    batch = Batch(item_seq=seq, users=torch.tensor([1]))
    with torch.no_grad():
        base = model.encode(batch)
        for old in range(MAX_LEN):
            changed = seq.clone()
            changed[0, old] = (changed[0, old] + 5) % N_ITEMS + 1
            out = model.encode(Batch(item_seq=changed, users=batch.users))
            # positions t >= old + L do not see item `old`; t in old..old+L-1 do
            unaffected = slice(old + model.window, MAX_LEN)
            torch.testing.assert_close(out[0, unaffected], base[0, unaffected], atol=0, rtol=0)
            for t in range(old, min(old + model.window, MAX_LEN)):
                assert not torch.equal(out[0, t], base[0, t])


# ------------------------------------------------------------------------ configuration
@pytest.mark.parametrize("name", ["fpmc", "gru4rec", "caser"])
def test_denoiser_refuses_non_attentive_models(name: str) -> None:
    config = RunConfig.model_validate(
        {
            "data": {"max_len": MAX_LEN},
            "model": tiny_model_config(name=name).model_dump(),
            "denoiser": {"enabled": True},
        }
    )
    with pytest.raises(ConfigError, match=f"self-attentive model; '{name}'") as info:
        build_recommender(config, n_items=N_ITEMS, n_users=N_USERS)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("field", ["caser_window", "caser_h_filters", "caser_v_filters"])
def test_caser_sizes_must_be_positive_integers(field: str) -> None:
    for bad in (0, 2.5):
        with pytest.raises(ValueError):
            tiny_model_config(name="caser", **{field: bad})


@pytest.mark.parametrize("name", ["fpmc", "gru4rec", "caser"])
@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ({"attention": "entmax15"}, "model.attention='entmax15'"),
        ({"attention": "sparse_fixed"}, "model.attention='sparse_fixed'"),
        ({"sparse_window": 3}, "model.sparse_window=3"),
        ({"sparse_stride": 2}, "model.sparse_stride=2"),
    ],
)
def test_attention_settings_refused_on_non_attentive_models(
    name: str, setting: dict[str, object], shown: str
) -> None:
    config = RunConfig.model_validate(
        {
            "data": {"max_len": MAX_LEN},
            "model": tiny_model_config(name=name, **setting).model_dump(),
        }
    )
    with pytest.raises(ConfigError, match=f"needs a self-attentive model; '{name}'") as info:
        build_recommender(config, n_items=N_ITEMS, n_users=N_USERS)
    assert shown in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=shown):
        make_model(name, **setting)  # the model refuses it too, however it is built


def test_caser_window_must_fit_in_max_len() -> None:
    assert make_model("caser", caser_window=MAX_LEN).window == MAX_LEN
    with pytest.raises(ConfigError) as info:
        make_model("caser", caser_window=MAX_LEN + 1)
    assert str(info.value) == (
        f"model.caser_window ({MAX_LEN + 1}) must not exceed data.max_len ({MAX_LEN})"
    )


@pytest.mark.parametrize("name", ["fpmc", "gru4rec", "caser"])
def test_heads_are_not_checked_for_models_without_attention(name: str) -> None:
    model = make_model(name, hidden_size=10, num_heads=3)
    assert model.config.num_heads == 3
    with pytest.raises(ConfigError, match=r"hidden_size \(10\).*num_heads \(3\)"):
        make_model("sasrec", hidden_size=10, num_heads=3)
