"""Leave-one-out split, as in SASRec/BERT4Rec.

For a user with sequence ``s_1..s_T`` (``T >= 3``): the training sequence is ``s_1..s_{T-2}``,
the validation target is ``s_{T-1}`` (input ``s_1..s_{T-2}``), and the test target is ``s_T``
(input ``s_1..s_{T-1}``, i.e. the validation item is part of the test input).

Users with fewer than 3 interactions cannot give both a validation and a test target. They are
not dropped: their whole sequence is used for training and they are excluded from evaluation
(as in the original SASRec code). Their number is kept in ``n_short_users`` and logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from recdenoiser.data.dataset import PAD, SequenceDataset

Stage = Literal["valid", "test"]
MIN_EVAL_LENGTH = 3


@dataclass
class LeaveOneOutSplit:
    """Training sequences and held-out targets of one dataset.

    Attributes:
        dataset: the full dataset (evaluation excludes every item a user ever interacted with).
        train_items / train_offsets: flat training sequences, same layout as the dataset's.
        train_times: timestamps aligned with ``train_items`` or ``None``.
        valid_target / test_target: int64 ``[n_users]``, ``PAD`` for users without targets.
        eval_users: users that have both targets (``T >= 3``).
    """

    dataset: SequenceDataset
    train_items: np.ndarray
    train_offsets: np.ndarray
    train_times: np.ndarray | None
    valid_target: np.ndarray
    test_target: np.ndarray
    eval_users: np.ndarray

    @classmethod
    def from_dataset(cls, dataset: SequenceDataset) -> LeaveOneOutSplit:
        lengths = dataset.lengths
        evaluable = lengths >= MIN_EVAL_LENGTH
        held_out = np.where(evaluable, 2, 0)
        train_lengths = lengths - held_out
        keep = np.ones(dataset.n_interactions, dtype=bool)
        ends = dataset.offsets[1:]
        # drop the last two positions of every evaluable user
        for k in (1, 2):
            keep[(ends - k)[evaluable]] = False
        valid_target = np.full(dataset.n_users, PAD, dtype=np.int64)
        test_target = np.full(dataset.n_users, PAD, dtype=np.int64)
        valid_target[evaluable] = dataset.items[(ends - 2)[evaluable]]
        test_target[evaluable] = dataset.items[(ends - 1)[evaluable]]
        train_offsets = np.concatenate([[0], np.cumsum(train_lengths)]).astype(np.int64)
        times = None if dataset.timestamps is None else dataset.timestamps[keep]
        return cls(
            dataset=dataset,
            train_items=dataset.items[keep],
            train_offsets=train_offsets,
            train_times=times,
            valid_target=valid_target,
            test_target=test_target,
            eval_users=np.flatnonzero(evaluable).astype(np.int64),
        )

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    @property
    def n_short_users(self) -> int:
        return self.n_users - len(self.eval_users)

    def train_sequence(self, user: int) -> np.ndarray:
        return self.train_items[self.train_offsets[user] : self.train_offsets[user + 1]]

    def train_time_sequence(self, user: int) -> np.ndarray | None:
        if self.train_times is None:
            return None
        return self.train_times[self.train_offsets[user] : self.train_offsets[user + 1]]

    def target(self, stage: Stage) -> np.ndarray:
        return self.valid_target if stage == "valid" else self.test_target

    def eval_input(self, user: int, stage: Stage) -> np.ndarray:
        """The history a model sees when predicting the ``stage`` target of ``user``."""
        train = self.train_sequence(user)
        if stage == "valid":
            return train
        return np.append(train, self.valid_target[user])

    def eval_input_times(self, user: int, stage: Stage) -> np.ndarray | None:
        """Timestamps of :meth:`eval_input` (test input includes the validation item's time)."""
        if self.dataset.timestamps is None:
            return None
        full = self.dataset.times(user)
        assert full is not None
        n = len(self.train_sequence(user)) + (0 if stage == "valid" else 1)
        return full[:n]

    def with_train_items(self, train_items: np.ndarray) -> LeaveOneOutSplit:
        """A copy whose training items are replaced (same layout); used by noise injection."""
        if train_items.shape != self.train_items.shape:
            raise ValueError("replacement training items must have the same shape")
        return LeaveOneOutSplit(
            dataset=self.dataset,
            train_items=np.asarray(train_items, dtype=np.int64),
            train_offsets=self.train_offsets,
            train_times=self.train_times,
            valid_target=self.valid_target,
            test_target=self.test_target,
            eval_users=self.eval_users,
        )
