"""The noise report: keep scores per history item, and how well they find injected items."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from recdenoiser.config import DenoiserConfig
from recdenoiser.data.noise import NoiseRecord
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.denoiser import AttentionMasks, attach_denoiser, report
from recdenoiser.models import Batch, build_model
from recdenoiser.models.base import SelfAttentiveRecommender
from tests.helpers import dataset_from_sequences, left_padded, planted_sequences, tiny_model_config

N_ITEMS, N_USERS, MAX_LEN = 30, 40, 8


def denoised(name: str = "sasrec", mask_kind: str = "positional") -> SelfAttentiveRecommender:
    torch.manual_seed(0)
    model = build_model(
        tiny_model_config(name=name), n_items=N_ITEMS, max_len=MAX_LEN, n_users=N_USERS
    )
    assert isinstance(model, SelfAttentiveRecommender)
    attach_denoiser(model, DenoiserConfig(enabled=True, mask_kind=mask_kind))
    return model.eval()


def masks_of(model: SelfAttentiveRecommender) -> AttentionMasks:
    assert isinstance(model.mask_provider, AttentionMasks)
    return model.mask_provider


def test_roc_auc_matches_counting_pairs() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    labels = rng.random(60) < 0.3
    pos, neg = scores[labels], scores[~labels]
    pairs = [(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)]
    assert report.roc_auc(scores, labels) == pytest.approx(np.mean(pairs))
    assert np.isnan(report.roc_auc(scores, np.zeros(60, dtype=bool)))


def test_positional_keep_score_is_the_mean_over_layers_and_queries() -> None:
    model = denoised()
    masks = masks_of(model)
    torch.manual_seed(1)
    masks.phi.data.normal_()
    history = [3, 4, 5]  # positions 5, 6, 7 of the window
    batch = Batch(item_seq=left_padded([history], MAX_LEN), users=torch.zeros(1, dtype=torch.long))
    keep = report.item_keep_scores(model, batch)
    assert torch.isnan(keep[0, :5]).all()
    prob = torch.sigmoid(masks.phi.detach())  # [layers, L, L]
    for col in range(5, 8):
        queries = range(col, 8)  # causal: later real positions see this key
        expected = np.mean([float(prob[layer, q, col]) for layer in range(2) for q in queries])
        assert float(keep[0, col]) == pytest.approx(expected, abs=1e-6)


def test_bert4rec_history_is_scored_with_the_appended_mask_token() -> None:
    model = denoised("bert4rec")
    masks = masks_of(model)
    torch.manual_seed(2)
    masks.phi.data.normal_()
    history = np.arange(1, MAX_LEN + 3)  # longer than the window
    table = report.user_history_report(
        model, history, np.array([str(i) for i in range(N_ITEMS + 2)]), MAX_LEN, user=0
    )
    # the [mask] token takes the last column: the model sees the newest MAX_LEN - 1 items
    assert table["item"].tolist() == [str(i) for i in history[-(MAX_LEN - 1) :]]
    prob = torch.sigmoid(masks.phi.detach())  # every position is real: all queries count
    expected = prob.mean(dim=(0, 1))[: MAX_LEN - 1].numpy()  # the history's columns
    np.testing.assert_allclose(table["keep"].to_numpy(), expected, atol=1e-6)


def test_user_history_report_uses_the_users_own_embedding() -> None:
    model = denoised("ssept", mask_kind="input_dependent")
    masks = masks_of(model)
    with torch.no_grad():  # make the input-dependent score large enough to see
        masks.query.weight.mul_(300)
        masks.key.weight.mul_(300)
    history = np.array([5, 9, 2, 7])
    names = np.array([str(i) for i in range(N_ITEMS + 1)])
    a = report.user_history_report(model, history, names, MAX_LEN, user=3)
    b = report.user_history_report(model, history, names, MAX_LEN, user=17)
    assert not np.allclose(a["keep"], b["keep"])
    direct = report.item_keep_scores(
        model, Batch(item_seq=left_padded([history.tolist()], MAX_LEN), users=torch.tensor([17]))
    )
    np.testing.assert_allclose(b["keep"].to_numpy(), direct[0, -4:].numpy(), atol=1e-6)


@pytest.mark.parametrize("inverted", [False, True])
def test_noise_detection_aligns_scores_with_the_injected_positions(
    monkeypatch: pytest.MonkeyPatch, inverted: bool
) -> None:
    """An oracle that prunes exactly the injected items scores 1; its opposite scores 0."""
    sequences = planted_sequences(n_users=N_USERS, n_items=N_ITEMS, min_len=4, max_len=15)
    split = LeaveOneOutSplit.from_dataset(dataset_from_sequences(sequences, N_ITEMS))
    injected = split.train_items % 2 == 1  # odd items count as injected
    noise = NoiseRecord(
        replaced=injected, original_items=split.train_items.copy(), ratio=0.5, seed=0
    )

    def oracle(model: SelfAttentiveRecommender, batch: Batch) -> torch.Tensor:
        odd = (batch.item_seq % 2 == 1) != inverted
        keep = torch.where(odd, 0.1, 0.9)
        return keep.masked_fill(batch.item_seq == 0, float("nan"))

    monkeypatch.setattr(report, "item_keep_scores", oracle)
    result = report.noise_detection(denoised(), split, noise, MAX_LEN, batch_size=7)
    # only the newest MAX_LEN training items of each user are scored
    lengths = np.diff(split.train_offsets)
    assert result.n_items == int(np.minimum(lengths, MAX_LEN).sum())
    assert result.roc_auc == pytest.approx(0.0 if inverted else 1.0)
    clean = result.n_items - result.n_injected  # inverted: every clean item is pruned first
    worst = max(0, result.n_injected - clean) / result.n_injected
    assert result.r_precision == pytest.approx(worst if inverted else 1.0)
    rows = result.per_item
    for u in (0, 13, N_USERS - 1):  # rows keep their user and their item
        mine = rows[rows["user"] == u]
        train = split.train_sequence(u)[-MAX_LEN:]
        assert mine["item"].tolist() == train.tolist()
        assert mine["injected"].tolist() == (train % 2 == 1).tolist()
