"""TiSASRec: personalised interval matrix, relation-aware attention, clear timestamp errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from recdenoiser.data.dataset import PAD
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.errors import ConfigError
from recdenoiser.models import Batch, build_model
from recdenoiser.models.attention import attention_allowed
from recdenoiser.models.tisasrec import TimeIntervalAttention, TiSASRec, interval_matrix
from recdenoiser.training.data import TrainingSequences
from tests.conftest import make_run_config
from tests.helpers import dataset_from_sequences, left_padded, tiny_model_config

N_ITEMS, MAX_LEN = 30, 8


def make_model(**overrides: object) -> TiSASRec:
    torch.manual_seed(0)
    model = build_model(
        tiny_model_config(name="tisasrec", **overrides), n_items=N_ITEMS, max_len=MAX_LEN
    )
    assert isinstance(model, TiSASRec)
    return model.eval()


def test_interval_matrix_on_a_hand_example() -> None:
    # row 0: PAD, then times 10, 10, 40, 100 -> smallest non-zero interval 30
    # row 1: all times equal -> scale 1, every interval 0
    # row 2: times 0, 5, 1000 -> scale 5; 1000/5 = 200 and 995/5 = 199 are clipped at span 3
    times = torch.tensor([[0, 10, 10, 40, 100], [0, 0, 7, 7, 7], [0, 0, 0, 5, 1000]])
    items = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 1, 2, 3], [0, 0, 1, 2, 3]])
    r = interval_matrix(times, items != PAD, span=3)
    assert r[0].tolist() == [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 1, 3],
        [0, 0, 0, 1, 3],
        [0, 1, 1, 0, 2],
        [0, 3, 3, 2, 0],
    ]
    assert r[1].abs().sum() == 0
    assert r[2, 2:, 2:].tolist() == [[0, 1, 3], [1, 0, 3], [3, 3, 0]]
    # rounding to the nearest integer: times 0, 30, 75, 100 have scale 25 (100 - 75), so
    # 30/25 = 1.2 -> 1, 45/25 = 1.8 -> 2, 70/25 = 2.8 -> 3
    r = interval_matrix(torch.tensor([[0, 30, 75, 100]]), torch.ones(1, 4, dtype=torch.bool), 9)
    assert r[0, 0].tolist() == [0, 1, 3, 4]
    assert r[0, 1].tolist() == [1, 0, 2, 3]


def test_relation_aware_attention_matches_the_naive_formula() -> None:
    torch.manual_seed(1)
    b, length, d, h, span = 2, 5, 8, 2, 4
    attn = TimeIntervalAttention(d, h, dropout=0.0).eval()
    x = torch.randn(b, length, d)
    pos_k, pos_v = torch.randn(b, length, d), torch.randn(b, length, d)
    table_k, table_v = torch.randn(span + 1, d), torch.randn(span + 1, d)
    intervals = torch.randint(0, span + 1, (b, length, length))
    padding = left_padded([[1, 2, 3, 4, 5], [1, 2, 3]], length) != PAD
    allowed = attention_allowed(padding, causal=True)
    attn.relations = (pos_k, pos_v, intervals, table_k, table_v)
    keep = (torch.rand(1, length, length) > 0.3).float()
    out = attn(x, allowed, keep)
    # naive: materialise R^K_ij and R^V_ij as [B, L, L, d]
    q, k, v = attn.qkv(x).split(d, dim=-1)
    k, v = k + pos_k, v + pos_v
    rk, rv = table_k[intervals], table_v[intervals]
    dh = d // h
    ctx = torch.zeros(b, length, d)
    for head in range(h):
        s = slice(head * dh, (head + 1) * dh)
        qh = q[..., s]
        scores = torch.einsum("bid,bjd->bij", qh, k[..., s])
        scores = scores + torch.einsum("bid,bijd->bij", qh, rk[..., s])
        scores = (scores / math.sqrt(dh)).masked_fill(~allowed, float("-inf"))
        w = scores.softmax(-1) * keep
        ctx[..., s] = torch.einsum("bij,bjd->bid", w, v[..., s]) + torch.einsum(
            "bij,bijd->bid", w, rv[..., s]
        )
    torch.testing.assert_close(out, attn.out(ctx), atol=1e-5, rtol=1e-5)
    # keep = 0 removes every weight: only the output bias is left
    zero = attn(x, allowed, torch.zeros(1, length, length))
    torch.testing.assert_close(zero, attn.out.bias.expand_as(zero))


def test_time_intervals_change_the_output() -> None:
    model = make_model()
    items = torch.tensor([[0, 0, 1, 2, 3, 4, 5, 6]])
    regular = torch.tensor([[0, 0, 100, 200, 300, 400, 500, 600]])
    irregular = torch.tensor([[0, 0, 100, 101, 300, 900, 901, 5000]])
    with torch.no_grad():
        a = model.encode(Batch(item_seq=items, users=torch.arange(1), time_seq=regular))
        b = model.encode(Batch(item_seq=items, users=torch.arange(1), time_seq=irregular))
        # a uniform rescaling of time is invisible (intervals are personalised)
        c = model.encode(Batch(item_seq=items, users=torch.arange(1), time_seq=regular * 7))
    assert not torch.allclose(a[:, -1], b[:, -1])
    torch.testing.assert_close(a, c)


def test_clear_error_without_timestamps(tmp_path: Path, planted_file: Path) -> None:
    model = make_model()
    batch = Batch(item_seq=torch.tensor([[1, 2, 3]]), users=torch.arange(1))
    with pytest.raises(ConfigError, match=r"tisasrec needs timestamps; use e\.g\. the beauty-time"):
        model.encode(batch)
    split = LeaveOneOutSplit.from_dataset(dataset_from_sequences([[1, 2, 3, 4]], N_ITEMS))
    with pytest.raises(ConfigError, match="beauty-time"):
        TrainingSequences.for_model(split, model, MAX_LEN, num_negatives=1)
    # and through the runner, before any training
    from recdenoiser.training.runner import train

    config = make_run_config(planted_file, tmp_path / "runs", model={"name": "tisasrec"})
    with pytest.raises(ConfigError, match="timestamps"):
        train(config)
