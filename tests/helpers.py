"""Small helpers shared by the model, training and CLI tests (no test collected here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from recdenoiser.config import ModelConfig
from recdenoiser.data.dataset import PAD, SequenceDataset
from recdenoiser.models.batch import Batch

N_USERS = 300
N_ITEMS = 60


def planted_sequences(
    n_users: int = N_USERS,
    n_items: int = N_ITEMS,
    p_next: float = 0.8,
    min_len: int = 8,
    max_len: int = 20,
    seed: int = 0,
) -> list[list[int]]:
    """Random walks over items ``1..n_items`` with a planted successor.

    Item ``i`` is followed by ``(i % n_items) + 1`` with probability ``p_next``, otherwise by a
    uniformly random item. Lengths are uniform in ``[min_len, max_len]``.
    """
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(n_users):
        length = int(rng.integers(min_len, max_len + 1))
        item = int(rng.integers(1, n_items + 1))
        seq = [item]
        for _ in range(length - 1):
            if rng.random() < p_next:
                item = (item % n_items) + 1
            else:
                item = int(rng.integers(1, n_items + 1))
            seq.append(item)
        sequences.append(seq)
    return sequences


def write_user_item(path: Path, sequences: list[list[int]]) -> Path:
    """Write ``user item`` lines (users ``u1..``-free integer ids ``1..n``, items as given)."""
    lines = [f"{u + 1} {item}" for u, seq in enumerate(sequences) for item in seq]
    path.write_text("\n".join(lines) + "\n")
    return path


def dataset_from_sequences(
    sequences: list[list[int]], n_items: int, name: str = "planted"
) -> SequenceDataset:
    """A :class:`SequenceDataset` whose internal item id equals the planted item id."""
    lengths = [len(s) for s in sequences]
    return SequenceDataset(
        name=name,
        items=np.array([i for s in sequences for i in s], dtype=np.int64),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        user_ids=np.array([str(u + 1) for u in range(len(sequences))]),
        item_ids=np.array([""] + [str(i) for i in range(1, n_items + 1)]),
    )


def tiny_model_config(**overrides: Any) -> ModelConfig:
    values: dict[str, Any] = {"hidden_size": 16, "num_blocks": 2, "num_heads": 2, "dropout": 0.0}
    values.update(overrides)
    return ModelConfig(**values)


def left_padded(histories: list[list[int]], width: int) -> torch.Tensor:
    out = torch.full((len(histories), width), PAD, dtype=torch.long)
    for row, h in enumerate(histories):
        if h:
            out[row, width - len(h) :] = torch.tensor(h, dtype=torch.long)
    return out


def random_histories(
    n: int, n_items: int, min_len: int, max_len: int, seed: int = 0
) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        out.append(torch.randint(1, n_items + 1, (length,), generator=g).tolist())
    return out


def training_batch(
    histories: list[list[int]], width: int, n_items: int, num_negatives: int = 1, seed: int = 0
) -> Batch:
    """Inputs ``h[:-1]`` and targets ``h[1:]`` right-aligned, random negatives (PAD at PAD)."""
    g = torch.Generator().manual_seed(seed)
    item_seq = left_padded([h[:-1] for h in histories], width)
    pos = left_padded([h[1:] for h in histories], width)
    neg = torch.randint(1, n_items + 1, (*pos.shape, num_negatives), generator=g)
    neg = neg.masked_fill((pos == PAD).unsqueeze(-1), PAD)
    return Batch(
        item_seq=item_seq,
        users=torch.arange(len(histories)),
        pos_items=pos,
        neg_items=neg,
    )


class PopularityScorer:
    """Scores every item by its training count (tiny deterministic jitter breaks ties)."""

    def __init__(self, train_items: np.ndarray, n_items: int, seed: int = 0):
        counts = np.bincount(train_items, minlength=n_items + 1).astype(np.float64)
        jitter = np.random.default_rng(seed).random(n_items + 1) * 1e-3
        self.scores = torch.from_numpy(counts + jitter).float()
        self.scores[PAD] = -1.0
        self.training = False

    def train(self, mode: bool = True) -> PopularityScorer:
        self.training = mode
        return self

    def score_candidates(self, batch: Batch, candidates: torch.Tensor) -> torch.Tensor:
        return self.scores[candidates]

    def score_all(self, batch: Batch) -> torch.Tensor:
        return self.scores.unsqueeze(0).expand(len(batch), -1).clone()
