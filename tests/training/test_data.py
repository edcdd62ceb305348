"""Training batches: exact inputs/targets, negatives, epoch order, trimming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recdenoiser.data.dataset import PAD, SequenceDataset
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.models import build_model
from recdenoiser.models.batch import Batch, pad_left
from recdenoiser.training.data import NegativeSampler, TrainingSequences
from tests.helpers import N_ITEMS, dataset_from_sequences, tiny_model_config


@pytest.fixture(scope="module")
def split(planted_dataset: SequenceDataset) -> LeaveOneOutSplit:
    return LeaveOneOutSplit.from_dataset(planted_dataset)


def test_pad_left() -> None:
    seqs = [np.array([1, 2, 3, 4]), np.array([5]), np.array([], dtype=np.int64)]
    assert pad_left(seqs, 3).tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0]]
    assert pad_left(seqs, 0).shape == (3, 0)


def test_inputs_and_targets_exact() -> None:
    # user 0: 7 items -> train 1..5; user 1: 3 items -> train [9]: no pair;
    # user 2: 2 items (too short to evaluate) -> trains on both; user 3: 25 items -> truncated
    sequences = [[1, 2, 3, 4, 5, 6, 7], [9, 8, 7], [4, 6], list(range(1, 26))]
    ds = dataset_from_sequences(sequences, n_items=30)
    data = TrainingSequences(LeaveOneOutSplit.from_dataset(ds), max_len=6, num_negatives=2)
    assert data.users.tolist() == [0, 2, 3]
    assert data.n_skipped_users == 1
    assert data.item_seq.tolist() == [
        [0, 0, 1, 2, 3, 4],
        [0, 0, 0, 0, 0, 4],
        [17, 18, 19, 20, 21, 22],
    ]
    assert data.pos_items.tolist() == [
        [0, 0, 2, 3, 4, 5],
        [0, 0, 0, 0, 0, 6],
        [18, 19, 20, 21, 22, 23],
    ]
    assert data.lengths.tolist() == [4, 1, 6]


def test_no_training_pair_at_all_is_an_error() -> None:
    ds = dataset_from_sequences([[1, 2, 3], [4, 5, 6]], n_items=6)
    with pytest.raises(ValueError, match="at least 2"):
        TrainingSequences(LeaveOneOutSplit.from_dataset(ds), max_len=5, num_negatives=1)


def test_batch_is_trimmed_and_negatives_masked(split: LeaveOneOutSplit) -> None:
    data = TrainingSequences(split, max_len=20, num_negatives=3)
    rows = torch.argsort(data.lengths)[:8]  # the shortest sequences
    batch = data.make_batch(rows, torch.Generator().manual_seed(0))
    width = int(data.lengths[rows].max())
    assert batch.item_seq.shape == (8, width)
    assert batch.pos_items is not None and batch.neg_items is not None
    assert batch.neg_items.shape == (8, width, 3)
    torch.testing.assert_close(batch.item_seq, data.item_seq[rows, -width:])
    torch.testing.assert_close(batch.pos_items, data.pos_items[rows, -width:])
    assert ((batch.neg_items == PAD) == (batch.pos_items == PAD).unsqueeze(-1)).all()
    # input and target padding coincide: a real input always has a real next item
    assert ((batch.item_seq == PAD) == (batch.pos_items == PAD)).all()


def test_negatives_never_in_training_history(split: LeaveOneOutSplit) -> None:
    data = TrainingSequences(split, max_len=20, num_negatives=4)
    gen = torch.Generator().manual_seed(1)
    counts = torch.zeros(N_ITEMS + 1)
    for _ in range(15):
        rows = torch.randperm(len(data), generator=gen)[:64]
        batch = data.make_batch(rows, gen)
        assert batch.neg_items is not None
        for row, user in enumerate(batch.users.tolist()):
            history = set(split.train_sequence(user).tolist())
            negs = batch.neg_items[row]
            negs = negs[negs != PAD].tolist()
            assert negs, "every training row has at least one target"
            assert not history.intersection(negs)
            assert all(1 <= n <= N_ITEMS for n in negs)
        counts += torch.bincount(batch.neg_items.flatten(), minlength=N_ITEMS + 1)
    counts = counts[1:]
    # every item is someone's allowed negative: uniform-ish over the catalogue
    assert (counts > 0).all()
    assert counts.max() / counts.mean() < 1.6
    assert counts.min() / counts.mean() > 0.5


def test_sampler_is_uniform_over_allowed_items() -> None:
    # one user who saw items 1..5 of 10: negatives are uniform over 6..10
    ds = dataset_from_sequences([[1, 2, 3, 4, 5, 9, 10]], n_items=10)
    sampler = NegativeSampler(LeaveOneOutSplit.from_dataset(ds))
    neg = sampler.sample(torch.tensor([0]), (20_000,), torch.Generator().manual_seed(0))
    freq = torch.bincount(neg.flatten(), minlength=11).float() / neg.numel()
    assert freq[:6].sum() == 0
    torch.testing.assert_close(freq[6:], torch.full((5,), 0.2), atol=0.015, rtol=0)


def test_sampler_rejects_full_catalogue() -> None:
    ds = dataset_from_sequences([[1, 2, 3, 1, 2]], n_items=3)
    with pytest.raises(ValueError, match="every item"):
        NegativeSampler(LeaveOneOutSplit.from_dataset(ds))


def epoch_rows(loader: torch.utils.data.DataLoader, epoch: int) -> list[list[int]]:
    loader.dataset.epoch = epoch  # type: ignore[attr-defined]
    return [batch.users.tolist() for batch in loader]


@pytest.mark.parametrize("bucket", [True, False])
def test_loader_covers_every_user_once(split: LeaveOneOutSplit, bucket: bool) -> None:
    data = TrainingSequences(split, max_len=20, num_negatives=1)
    loader = data.loader(batch_size=32, seed=3, bucket=bucket)
    assert len(loader) == (len(data) + 31) // 32
    for epoch in range(3):
        batches = epoch_rows(loader, epoch)
        assert len(batches) == len(loader)
        users = [u for b in batches for u in b]
        assert sorted(users) == sorted(data.users.tolist())


def test_bucketing_groups_similar_lengths(split: LeaveOneOutSplit) -> None:
    data = TrainingSequences(split, max_len=20, num_negatives=1)

    def padding(bucket: bool) -> int:
        total = 0
        for batch in data.loader(batch_size=16, seed=0, bucket=bucket):
            total += int((batch.item_seq == PAD).sum())
        return total

    assert padding(True) < padding(False)


def test_epoch_order_changes_and_is_reproducible(split: LeaveOneOutSplit) -> None:
    data = TrainingSequences(split, max_len=20, num_negatives=1)
    a = data.loader(batch_size=32, seed=5)
    b = data.loader(batch_size=32, seed=5)
    c = data.loader(batch_size=32, seed=6)
    assert epoch_rows(a, 0) == epoch_rows(b, 0)
    assert epoch_rows(a, 1) == epoch_rows(b, 1)
    assert epoch_rows(a, 0) != epoch_rows(a, 1)
    assert epoch_rows(a, 0) != epoch_rows(c, 0)
    # negatives follow the seed too
    a.dataset.epoch = b.dataset.epoch = 2  # type: ignore[attr-defined]
    for x, y in zip(a, b, strict=True):
        assert x.neg_items is not None and y.neg_items is not None
        assert torch.equal(x.neg_items, y.neg_items)


def test_trimmed_batch_gives_same_loss(split: LeaveOneOutSplit) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(num_negatives=2), n_items=N_ITEMS, max_len=20).eval()
    data = TrainingSequences(split, max_len=20, num_negatives=2)
    rows = torch.argsort(data.lengths)[:16]
    trimmed = data.make_batch(rows, torch.Generator().manual_seed(0))
    assert trimmed.item_seq.shape[1] < 20
    width = trimmed.item_seq.shape[1]
    assert trimmed.pos_items is not None and trimmed.neg_items is not None

    def widen(t: torch.Tensor) -> torch.Tensor:
        pad = torch.zeros((t.shape[0], 20 - width, *t.shape[2:]), dtype=t.dtype)
        return torch.cat([pad, t], dim=1)

    full = Batch(
        item_seq=widen(trimmed.item_seq),
        users=trimmed.users,
        pos_items=widen(trimmed.pos_items),
        neg_items=widen(trimmed.neg_items),
    )
    torch.testing.assert_close(full.item_seq, data.item_seq[rows])
    with torch.no_grad():
        torch.testing.assert_close(
            model.sequence_loss(trimmed), model.sequence_loss(full), atol=1e-6, rtol=1e-5
        )


def test_softmax_loss_needs_no_negatives(split: LeaveOneOutSplit) -> None:
    data = TrainingSequences(split, max_len=20, num_negatives=1, with_negatives=False)
    batch = next(iter(data.loader(batch_size=8, seed=0)))
    assert batch.neg_items is None
    assert batch.pos_items is not None


def test_bucketed_batches_weigh_every_target_equally(split: LeaveOneOutSplit) -> None:
    data = TrainingSequences(split, max_len=20, num_negatives=1)
    bucketed = list(data.loader(batch_size=32, seed=0, bucket=True))
    targets = [int((b.pos_items != PAD).sum()) for b in bucketed]
    scales = [b.loss_scale for b in bucketed]
    # a batch's weight is proportional to its number of targets and averages to one
    assert np.allclose(np.array(scales) / np.array(targets), scales[0] / targets[0])
    assert np.isclose(np.mean(scales), 1.0)
    # so summing scale * (batch mean of token losses) over an epoch weighs every target by the
    # same constant: scale / targets is identical for all batches (checked above)
    shuffled = list(data.loader(batch_size=32, seed=0, bucket=False))
    assert all(b.loss_scale == 1.0 for b in shuffled)
