"""Training batches: padded next-item tensors built once, negatives sampled per batch in torch.

For a training sequence ``s_1..s_T`` the input is ``s_1..s_{T-1}`` and the targets are
``s_2..s_T`` (both right-aligned in a window of ``max_len``), as in SASRec. Users with fewer than
two training items give no (input, target) pair and are left out of training; their count is
logged.

Models whose ``training_input`` is ``"full"`` (Cloze training, BERT4Rec) get the whole training
sequence ``s_1..s_T`` (its last ``max_len`` items) as ``item_seq`` with no targets instead, and
every user with at least one training item. Either way each batch then goes through the model's
``training_batch`` transform (see :meth:`TrainingSequences.for_model`) before negatives are
sampled for the targets it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from recdenoiser.data.dataset import PAD
from recdenoiser.data.split import LeaveOneOutSplit
from recdenoiser.errors import ConfigError
from recdenoiser.models.base import SequentialRecommender
from recdenoiser.models.batch import Batch, pad_left

logger = logging.getLogger(__name__)

MAX_RESAMPLE_ROUNDS = 100
BUCKET_WINDOW = 50  # batches per length-sorting window


class NegativeSampler:
    """Uniform negatives from ``1..n_items`` that are not in the user's training history.

    Membership is tested with a sorted array of ``user * (n_items + 1) + item`` keys and
    ``torch.searchsorted``, so sampling is a handful of vectorised ops per batch.
    """

    def __init__(self, split: LeaveOneOutSplit):
        self.n_items = split.n_items
        users = np.repeat(np.arange(split.n_users), np.diff(split.train_offsets))
        keys = np.unique(users * (self.n_items + 1) + split.train_items)
        self.keys = torch.from_numpy(keys)
        self.max_per_user = int(np.bincount(users, minlength=1).max()) if len(users) else 0
        if self.max_per_user >= self.n_items:
            raise ValueError("a user has interacted with every item: no negative can be sampled")

    def _in_history(self, users: Tensor, items: Tensor) -> Tensor:
        keys = users.view(-1, *([1] * (items.dim() - 1))) * (self.n_items + 1) + items
        pos = torch.searchsorted(self.keys, keys).clamp_max(len(self.keys) - 1)
        return self.keys[pos] == keys

    def sample(self, users: Tensor, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        """``[B, *shape]`` negatives for ``users`` ``[B]``."""
        size = (len(users), *shape)
        neg = torch.randint(1, self.n_items + 1, size, generator=generator)
        for _ in range(MAX_RESAMPLE_ROUNDS):
            bad = self._in_history(users, neg)
            n_bad = int(bad.sum())
            if n_bad == 0:
                return neg
            neg[bad] = torch.randint(1, self.n_items + 1, (n_bad,), generator=generator)
        raise RuntimeError("negative sampling did not converge; is the item catalogue tiny?")


class TrainingSequences:
    """All training examples of a split as padded tensors, with a seeded batch iterator."""

    def __init__(
        self,
        split: LeaveOneOutSplit,
        max_len: int,
        num_negatives: int,
        with_negatives: bool = True,
        *,
        full_sequences: bool = False,
        transform: Callable[[Batch, torch.Generator], Batch] | None = None,
    ):
        lengths = np.diff(split.train_offsets)
        min_length = 1 if full_sequences else 2
        users = np.flatnonzero(lengths >= min_length)
        n_skipped = split.n_users - len(users)
        if n_skipped:
            logger.info(
                "%d users have fewer than %d training items and give no training example",
                n_skipped,
                min_length,
            )
        if len(users) == 0:
            raise ValueError(f"no user has at least {min_length} training items")
        seqs = [split.train_sequence(int(u)) for u in users]
        # inputs are s[:-1] with targets s[1:], or the whole sequence with no targets
        cut = slice(None) if full_sequences else slice(None, -1)
        self.users = torch.from_numpy(users)
        self.item_seq = torch.from_numpy(pad_left([s[cut] for s in seqs], max_len))
        self.pos_items: Tensor | None = None
        if not full_sequences:
            self.pos_items = torch.from_numpy(pad_left([s[1:] for s in seqs], max_len))
        self.time_seq: Tensor | None = None
        if split.train_times is not None:
            times = [split.train_time_sequence(int(u)) for u in users]
            self.time_seq = torch.from_numpy(pad_left([t[cut] for t in times], max_len))  # type: ignore[index]
        self.lengths = (self.item_seq != PAD).sum(1)
        self.transform = transform
        self.num_negatives = num_negatives
        self.with_negatives = with_negatives
        self.sampler = NegativeSampler(split) if with_negatives else None
        self.n_skipped_users = n_skipped

    @classmethod
    def for_model(
        cls,
        split: LeaveOneOutSplit,
        model: SequentialRecommender,
        max_len: int,
        num_negatives: int,
    ) -> TrainingSequences:
        """The training data ``model`` asks for: its input kind, negatives and batch transform."""
        if model.needs_timestamps and split.train_times is None:
            name = model.config.name
            raise ConfigError(
                f"{name} needs timestamps but dataset {split.dataset.name!r} has none; "
                "use a dataset with times (e.g. the beauty-time dataset)"
            )
        return cls(
            split,
            max_len,
            num_negatives,
            model.needs_negatives,
            full_sequences=model.training_input == "full",
            transform=model.training_batch,
        )

    def __len__(self) -> int:
        return len(self.users)

    def make_batch(
        self, rows: Tensor, generator: torch.Generator, mean_targets: float | None = None
    ) -> Batch:
        """The batch of training rows ``rows``, trimmed to its longest sequence.

        Trimming leading all-PAD columns changes no output (positions count from the end and
        padding is masked), it only skips work. The transform (if any) runs first; negatives
        are then drawn for the targets it returns, against the real users' histories.
        """
        width = int(self.lengths[rows].max())
        users = self.users[rows]
        batch = Batch(
            item_seq=self.item_seq[rows, -width:],
            users=users,
            pos_items=None if self.pos_items is None else self.pos_items[rows, -width:],
            time_seq=None if self.time_seq is None else self.time_seq[rows, -width:],
        )
        if self.transform is not None:
            batch = self.transform(batch, generator)
        if self.sampler is not None:
            pos = batch.pos_items
            if pos is None:
                raise ValueError("negatives need targets: the training batch has no pos_items")
            neg = self.sampler.sample(users, (pos.shape[1], self.num_negatives), generator)
            batch = replace(batch, neg_items=neg.masked_fill((pos == PAD).unsqueeze(-1), PAD))
        if mean_targets is not None and batch.pos_items is not None:
            batch.loss_scale = float((batch.pos_items != PAD).sum()) / mean_targets
        return batch

    def mean_targets_per_batch(self, batch_size: int) -> float | None:
        """Targets per batch averaged over an epoch (None when the model makes its own)."""
        if self.pos_items is None:
            return None
        n_batches = (len(self) + batch_size - 1) // batch_size
        return float((self.pos_items != PAD).sum()) / n_batches

    def loader(self, batch_size: int, seed: int, bucket: bool = True) -> DataLoader:
        """Shuffled batches; shuffling and negatives both follow ``seed`` (and the epoch).

        With ``bucket=True`` users are shuffled, then sorted by length within windows of
        ``BUCKET_WINDOW`` batches, and the resulting batches are shuffled again: batches hold
        sequences of similar length, so little time is spent on padding. Every user still
        appears once per epoch.
        """
        return DataLoader(
            _EpochBatches(self, batch_size, seed, bucket),
            batch_size=None,
            shuffle=False,
            num_workers=0,
        )


class _EpochBatches(torch.utils.data.IterableDataset):
    """Iterates over one epoch of batches; the epoch counter makes each epoch's order differ."""

    def __init__(self, data: TrainingSequences, batch_size: int, seed: int, bucket: bool):
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.bucket = bucket
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        # bucketed batches hold very different numbers of targets: weigh each batch's mean loss
        # by its share so that every target counts the same, as with shuffled batches
        mean_targets = self.data.mean_targets_per_batch(self.batch_size) if self.bucket else None
        order = torch.randperm(len(self.data), generator=generator)
        batches = list(order.split(self.batch_size))
        if self.bucket:
            window = self.batch_size * BUCKET_WINDOW
            chunks = []
            for chunk in order.split(window):
                by_length = torch.argsort(self.data.lengths[chunk], stable=True)
                chunks.extend(chunk[by_length].split(self.batch_size))
            shuffle = torch.randperm(len(chunks), generator=generator)
            batches = [chunks[i] for i in shuffle.tolist()]
        for rows in batches:
            yield self.data.make_batch(rows, generator, mean_targets)
