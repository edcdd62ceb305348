"""BERT4Rec: Cloze masking, full-sequence training data, [mask] never scored, inference input."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recdenoiser.data.dataset import PAD
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.models import Batch, build_model
from recdenoiser.models.bert4rec import BERT4Rec
from recdenoiser.training.data import TrainingSequences
from tests.helpers import dataset_from_sequences, left_padded, random_histories, tiny_model_config

N_ITEMS, MAX_LEN = 30, 12


def make_model(**overrides: object) -> BERT4Rec:
    torch.manual_seed(0)
    values: dict[str, object] = {"name": "bert4rec", "loss": "softmax", "activation": "gelu"}
    values.update(overrides)
    model = build_model(tiny_model_config(**values), n_items=N_ITEMS, max_len=MAX_LEN)
    assert isinstance(model, BERT4Rec)
    return model.eval()


def cloze(model: BERT4Rec, histories: list[list[int]], seed: int = 0) -> tuple[Batch, Batch]:
    full = Batch(item_seq=left_padded(histories, MAX_LEN), users=torch.arange(len(histories)))
    return full, model.training_batch(full, torch.Generator().manual_seed(seed))


def test_cloze_masks_at_least_one_real_item_and_targets_only_masked_positions() -> None:
    model = make_model(mask_prob=0.2)
    histories = random_histories(400, N_ITEMS, 1, MAX_LEN, seed=3)
    full, train = cloze(model, histories)
    assert train.pos_items is not None
    masked = train.item_seq == model.mask_token
    real = full.item_seq != PAD
    assert not (masked & ~real).any()  # padding is never masked
    assert masked.any(1).all()  # every sequence has at least one masked item
    # targets are the original items exactly at the masked positions, PAD elsewhere
    assert torch.equal(train.pos_items != PAD, masked)
    assert torch.equal(train.pos_items[masked], full.item_seq[masked])
    assert torch.equal(train.item_seq[~masked], full.item_seq[~masked])
    # the masked fraction is mask_prob, plus the forced one of sequences that drew none
    rate = masked.sum().item() / real.sum().item()
    assert 0.18 < rate < 0.26, rate


def test_cloze_is_seeded() -> None:
    model = make_model()
    histories = random_histories(20, N_ITEMS, 1, MAX_LEN, seed=1)
    assert torch.equal(
        cloze(model, histories, 5)[1].item_seq, cloze(model, histories, 5)[1].item_seq
    )
    assert not torch.equal(
        cloze(model, histories, 5)[1].item_seq, cloze(model, histories, 6)[1].item_seq
    )


def test_training_data_holds_the_whole_training_sequence() -> None:
    sequences = [[1, 2, 3, 4, 5], [6, 7, 8], [9], [10, 11, 12, 13]]
    split = LeaveOneOutSplit.from_dataset(dataset_from_sequences(sequences, N_ITEMS))
    model = make_model()
    data = TrainingSequences.for_model(split, model, MAX_LEN, num_negatives=1)
    assert data.pos_items is None and data.sampler is None  # softmax: no negatives
    # users with a single training item take part (BERT4Rec has no input/target shift)
    assert len(data) == 4
    batch = next(iter(data.loader(batch_size=4, seed=0, bucket=False)))
    assert batch.pos_items is not None
    restored = torch.where(batch.pos_items != PAD, batch.pos_items, batch.item_seq)
    got = {tuple(r[r != PAD].tolist()) for r in restored}
    want = {tuple(split.train_sequence(u).tolist()) for u in range(4)}
    assert got == want


def test_bce_training_samples_negatives_for_masked_positions() -> None:
    split = LeaveOneOutSplit.from_dataset(
        dataset_from_sequences(random_histories(30, N_ITEMS, 4, 15, seed=2), N_ITEMS)
    )
    model = make_model(loss="bce", num_negatives=2)
    data = TrainingSequences.for_model(split, model, MAX_LEN, num_negatives=2)
    batch = next(iter(data.loader(batch_size=8, seed=0)))
    assert batch.neg_items is not None and batch.pos_items is not None
    assert torch.equal((batch.neg_items != PAD).all(-1), batch.pos_items != PAD)


def test_mask_token_is_never_scored_or_recommended() -> None:
    model = make_model()
    assert model.embedding.items.num_embeddings == N_ITEMS + 2
    assert model.item_table().shape[0] == N_ITEMS + 1
    with torch.no_grad():  # make [mask] the best match of every hidden state it could score
        model.embedding.items.weight[model.mask_token] = 100.0
    batch = Batch(item_seq=left_padded([[1, 2, 3], [4] * MAX_LEN], MAX_LEN), users=torch.arange(2))
    with torch.no_grad():
        scores = model.score_all(batch)
    assert scores.shape == (2, N_ITEMS + 1)
    top = scores[:, 1:].argmax(1) + 1
    assert (top <= N_ITEMS).all()


def test_softmax_loss_is_cross_entropy_over_real_items_at_masked_positions() -> None:
    model = make_model()
    _, train = cloze(model, random_histories(6, N_ITEMS, 2, MAX_LEN, seed=4))
    assert train.pos_items is not None
    with torch.no_grad():
        per_seq = model.sequence_loss(train)
        hidden = model.encode(train)
        logits = hidden @ model.embedding.items.weight[1 : N_ITEMS + 1].T  # no PAD, no [mask]
    target = train.pos_items != PAD
    reference = F.cross_entropy(logits[target], train.pos_items[target] - 1)
    torch.testing.assert_close(per_seq.sum(), reference, atol=1e-5, rtol=1e-5)


def test_inference_appends_the_mask_token_and_keeps_max_len() -> None:
    model = make_model()
    short = Batch(item_seq=left_padded([[1, 2, 3]], 5), users=torch.arange(1))
    full = Batch(item_seq=torch.arange(1, MAX_LEN + 1).view(1, -1), users=torch.arange(1))
    m = model.mask_token
    assert model.inference_input(short).item_seq.tolist() == [[0, 0, 1, 2, 3, m]]
    appended = model.inference_input(full).item_seq
    assert appended.shape == (1, MAX_LEN)  # the oldest item makes room for [mask]
    assert appended.tolist() == [[*range(2, MAX_LEN + 1), m]]
    with torch.no_grad():
        direct = model.encode(Batch(item_seq=appended, users=full.users))[:, -1]
        torch.testing.assert_close(model.user_vector(full), direct)


def test_attention_is_bidirectional() -> None:
    model = make_model()
    seq = torch.arange(1, MAX_LEN + 1).view(1, -1)
    changed = seq.clone()
    changed[0, -1] = 30
    with torch.no_grad():
        a = model.encode(Batch(item_seq=seq, users=torch.arange(1)))
        b = model.encode(Batch(item_seq=changed, users=torch.arange(1)))
    assert not torch.allclose(a[:, 0], b[:, 0])  # the first position sees the last one
