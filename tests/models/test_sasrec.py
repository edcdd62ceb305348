"""SASRec on tiny random inputs: shapes, padding invariance, causality, attention paths, losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recdenoiser.data.dataset import PAD
from recdenoiser.models import MODELS, Batch, build_model
from recdenoiser.models.attention import MultiHeadSelfAttention, attention_allowed
from recdenoiser.models.base import SequentialRecommender
from recdenoiser.models.dropout import Dropout, fast_dropout
from recdenoiser.models.embedding import positions_from_end
from recdenoiser.models.losses import LOSSES
from tests.helpers import left_padded, random_histories, tiny_model_config, training_batch

N_ITEMS = 30
MAX_LEN = 12


def make_model(seed: int = 0, **overrides: object) -> SequentialRecommender:
    torch.manual_seed(seed)
    model = build_model(tiny_model_config(**overrides), n_items=N_ITEMS, max_len=MAX_LEN)
    return model.eval()


def eval_batch(histories: list[list[int]], width: int) -> Batch:
    return Batch(item_seq=left_padded(histories, width), users=torch.arange(len(histories)))


HISTORIES = random_histories(6, N_ITEMS, 1, MAX_LEN, seed=1)


def test_registry_has_sasrec() -> None:
    assert "sasrec" in MODELS
    assert MODELS.get("sasrec").causal


def test_output_shapes() -> None:
    model = make_model(num_negatives=3)
    batch = eval_batch(HISTORIES, MAX_LEN)
    b = len(HISTORIES)
    assert model.encode(batch).shape == (b, MAX_LEN, 16)
    assert model.item_table().shape == (N_ITEMS + 1, 16)
    assert model.score_all(batch).shape == (b, N_ITEMS + 1)
    candidates = torch.randint(1, N_ITEMS + 1, (b, 7))
    assert model.score_candidates(batch, candidates).shape == (b, 7)
    train = training_batch(HISTORIES, MAX_LEN, N_ITEMS, num_negatives=3)
    losses = model.sequence_loss(train)
    assert losses.shape == (b,)
    assert torch.isfinite(losses).all()


def test_positions_count_from_the_end() -> None:
    mask = left_padded([[5, 6, 7], [1]], 5) != PAD
    assert positions_from_end(mask).tolist() == [[0, 0, 3, 2, 1], [0, 0, 0, 0, 1]]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("norm", ["pre", "post", "sasrec"])
def test_padding_invariance(fused: bool, norm: str) -> None:
    model = make_model(fused_attention=fused, norm=norm)
    short = [h[-6:] for h in HISTORIES]
    with torch.no_grad():
        narrow = model.score_all(eval_batch(short, 6))
        wide = model.score_all(eval_batch(short, MAX_LEN))
        hidden_narrow = model.encode(eval_batch(short, 6))
        hidden_wide = model.encode(eval_batch(short, MAX_LEN))
    torch.testing.assert_close(narrow, wide, atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden_narrow, hidden_wide[:, -6:], atol=1e-5, rtol=0)
    # padding positions carry nothing
    assert hidden_wide[:, : MAX_LEN - 6].abs().max() == 0


@pytest.mark.parametrize("fused", [True, False])
def test_causality(fused: bool) -> None:
    model = make_model(fused_attention=fused)
    history = list(range(1, MAX_LEN + 1))
    batch = eval_batch([history], MAX_LEN)
    with torch.no_grad():
        base = model.encode(batch)
        for t in range(MAX_LEN):
            changed = batch.item_seq.clone()
            changed[0, t] = (changed[0, t] % N_ITEMS) + 1 if t % 2 else N_ITEMS
            out = model.encode(Batch(item_seq=changed, users=batch.users))
            torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
            assert not torch.allclose(out[:, t], base[:, t])


def test_fused_and_explicit_attention_agree() -> None:
    fused = make_model(fused_attention=True, num_heads=2)
    explicit = make_model(fused_attention=False, num_heads=2)
    explicit.load_state_dict(fused.state_dict())
    batch = eval_batch(HISTORIES, MAX_LEN)
    with torch.no_grad():
        torch.testing.assert_close(fused.encode(batch), explicit.encode(batch), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            fused.score_all(batch), explicit.score_all(batch), atol=1e-5, rtol=0
        )


def test_attention_layer_paths_and_keep_hook() -> None:
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(16, 2, dropout=0.0, fused=True).eval()
    x = torch.randn(3, 5, 16)
    pad = left_padded([[1, 2, 3, 4, 5], [1, 2], [3]], 5) != PAD
    allowed = attention_allowed(pad, causal=True)
    fused_out = attn(x, allowed)
    ones = torch.ones(1, 5, 5)
    torch.testing.assert_close(attn(x, allowed, keep=ones), fused_out, atol=1e-5, rtol=0)
    # keep = 0 removes every attention weight: the context is 0 and only the output bias is left
    zero_out = attn(x, allowed, keep=torch.zeros(1, 5, 5))
    torch.testing.assert_close(zero_out, attn.out.bias.expand_as(zero_out))


def test_score_candidates_matches_score_all() -> None:
    model = make_model()
    batch = eval_batch(HISTORIES, MAX_LEN)
    candidates = torch.randint(1, N_ITEMS + 1, (len(HISTORIES), 9))
    with torch.no_grad():
        gathered = model.score_all(batch).gather(1, candidates)
        direct = model.score_candidates(batch, candidates)
    torch.testing.assert_close(direct, gathered, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- losses
def _hidden_and_logits(model: SequentialRecommender, batch: Batch) -> tuple[torch.Tensor, ...]:
    hidden = model.encode(batch)
    table = model.item_table()
    assert batch.pos_items is not None and batch.neg_items is not None
    pos = (hidden * table[batch.pos_items]).sum(-1)  # [B, L]
    neg = (hidden.unsqueeze(2) * table[batch.neg_items]).sum(-1)  # [B, L, K]
    return hidden, pos, neg, batch.pos_items != PAD


@pytest.mark.parametrize("k", [1, 4])
def test_bce_loss_matches_reference(k: int) -> None:
    model = make_model(loss="bce", num_negatives=k)
    batch = training_batch(HISTORIES, MAX_LEN, N_ITEMS, num_negatives=k)
    with torch.no_grad():
        per_seq = model.sequence_loss(batch)
        _, pos, neg, valid = _hidden_and_logits(model, batch)
    token = -torch.log(torch.sigmoid(pos)) - torch.log(1 - torch.sigmoid(neg)).mean(-1)
    reference = token[valid].mean()
    torch.testing.assert_close(per_seq.sum(), reference, atol=1e-5, rtol=1e-5)
    per_seq_ref = (token * valid).sum(1) / valid.sum()
    torch.testing.assert_close(per_seq, per_seq_ref, atol=1e-5, rtol=1e-5)


def test_sampled_softmax_matches_reference() -> None:
    model = make_model(loss="sampled_softmax", num_negatives=5)
    batch = training_batch(HISTORIES, MAX_LEN, N_ITEMS, num_negatives=5)
    with torch.no_grad():
        per_seq = model.sequence_loss(batch)
        _, pos, neg, valid = _hidden_and_logits(model, batch)
    logits = torch.cat([pos.unsqueeze(-1), neg], dim=-1)[valid]  # [T, 1+K]
    reference = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
    torch.testing.assert_close(per_seq.sum(), reference, atol=1e-5, rtol=1e-5)


def test_full_softmax_matches_cross_entropy() -> None:
    model = make_model(loss="softmax")
    assert not model.needs_negatives
    batch = training_batch(HISTORIES, MAX_LEN, N_ITEMS)
    batch = Batch(item_seq=batch.item_seq, users=batch.users, pos_items=batch.pos_items)
    with torch.no_grad():
        per_seq = model.sequence_loss(batch)
        hidden = model.encode(batch)
    assert batch.pos_items is not None
    valid = batch.pos_items != PAD
    logits = hidden[valid] @ model.item_table()[1:].T  # items 1..N only
    reference = F.cross_entropy(logits, batch.pos_items[valid] - 1)
    torch.testing.assert_close(per_seq.sum(), reference.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("loss", ["bce", "sampled_softmax", "softmax"])
def test_pad_positions_never_contribute(loss: str) -> None:
    model = make_model(loss=loss, num_negatives=3)
    batch = training_batch(HISTORIES, MAX_LEN, N_ITEMS, num_negatives=3)
    assert batch.pos_items is not None and batch.neg_items is not None
    pad = batch.pos_items == PAD
    assert pad.any()
    other = batch.neg_items.clone()
    other[pad] = torch.randint(1, N_ITEMS + 1, (int(pad.sum()), 3))
    changed = Batch(
        item_seq=batch.item_seq, users=batch.users, pos_items=batch.pos_items, neg_items=other
    )
    with torch.no_grad():
        torch.testing.assert_close(model.sequence_loss(changed), model.sequence_loss(batch))
    # a sequence without any target contributes exactly zero
    empty = left_padded([[]], MAX_LEN)
    hidden = torch.randn(1, MAX_LEN, 16)
    neg = torch.zeros(1, MAX_LEN, 3, dtype=torch.long)
    out = LOSSES.get(loss)(hidden, model.item_table().detach(), empty, neg)
    assert out.tolist() == [0.0]


@pytest.mark.parametrize("norm", ["pre", "post", "sasrec"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_norm_variants_train(norm: str, activation: str) -> None:
    model = make_model(norm=norm, activation=activation, dropout=0.2).train()
    batch = training_batch(HISTORIES, MAX_LEN, N_ITEMS)
    loss = model.sequence_loss(batch).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.embedding.items.weight.grad is not None
    assert model.embedding.items.weight.grad[PAD].abs().max() == 0


def test_pad_embedding_rows_are_zero() -> None:
    model = make_model()
    assert model.embedding.items.weight[PAD].abs().max() == 0
    assert model.embedding.positions.weight[0].abs().max() == 0


def test_sequence_longer_than_max_len_rejected() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="exceeds max_len"):
        model.encode(eval_batch([[1] * (MAX_LEN + 1)], MAX_LEN + 1))


def test_training_needs_targets() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="pos_items"):
        model.sequence_loss(eval_batch(HISTORIES, MAX_LEN))


# --------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_fast_dropout_statistics(p: float) -> None:
    torch.manual_seed(0)
    ones = torch.ones(200_000)
    out = fast_dropout(ones, p, training=True)
    assert abs((out == 0).float().mean().item() - p) < 0.01
    assert abs(out.mean().item() - 1.0) < 0.02
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))
    x = torch.randn(500)
    draws = torch.stack([fast_dropout(x, p, training=True) for _ in range(2000)])
    # std of the mean is |x| * sqrt(p / (1 - p) / 2000) <= 0.023 |x|: allow ~9 sigma
    torch.testing.assert_close(draws.mean(0), x, atol=0.02, rtol=0.2)


def test_fast_dropout_edge_cases() -> None:
    x = torch.randn(10)
    assert fast_dropout(x, 0.5, training=False) is x
    assert fast_dropout(x, 0.0, training=True) is x
    assert fast_dropout(x, 1.0, training=True).abs().max() == 0
    layer = Dropout(0.3)
    assert layer.eval()(x) is x
    with pytest.raises(ValueError):
        Dropout(1.5)
