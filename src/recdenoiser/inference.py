"""Next-item recommendations from a trained checkpoint, in raw ids.

>>> rec = Recommender.from_checkpoint("runs/my-run")            # doctest: +SKIP
>>> rec.recommend_users(["42"], k=10)                           # doctest: +SKIP
>>> rec.recommend_history(["1193", "661", "914"], k=10)         # doctest: +SKIP

A known user's history is their whole sequence in the training data (validation and test items
included: at serving time everything observed is history). Items already in the history are
excluded from the recommendations unless ``exclude_seen=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recdenoiser.data.dataset import PAD
from recdenoiser.errors import RecDenoiserError, UnknownIdError
from recdenoiser.models.batch import Batch, pad_left
from recdenoiser.training.checkpoint import LoadedCheckpoint, load_checkpoint


@dataclass
class Recommendation:
    query: str
    items: list[str]
    scores: list[float]

    def to_dict(self) -> dict[str, object]:
        return {"query": self.query, "items": self.items, "scores": self.scores}


class Recommender:
    def __init__(self, checkpoint: LoadedCheckpoint, device: str = "cpu"):
        self.checkpoint = checkpoint
        self.model = checkpoint.model.to(device).eval()
        self.dataset = checkpoint.dataset
        self.max_len = int(checkpoint.config.data.max_len)
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Recommender:
        return cls(load_checkpoint(path, device=device), device=device)

    def _top_k(
        self,
        histories: list[np.ndarray],
        users: list[int],
        k: int,
        exclude_seen: bool,
        times: list[np.ndarray] | None = None,
    ) -> list[tuple[list[str], list[float]]]:
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise RecDenoiserError(f"k must be a positive integer, got {k!r}")
        batch = Batch(
            item_seq=torch.from_numpy(pad_left(histories, self.max_len)).to(self.device),
            users=torch.tensor(users, dtype=torch.long, device=self.device),
        )
        if times is not None:
            batch.time_seq = torch.from_numpy(pad_left(times, self.max_len)).to(self.device)
        with torch.no_grad():  # inference tensors cannot be edited in place below
            scores = self.model.score_all(batch).float()
        scores[:, PAD] = float("-inf")
        if exclude_seen:
            for row, hist in enumerate(histories):
                scores[row, torch.from_numpy(hist).to(self.device)] = float("-inf")
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        out = []
        for vals, idx in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            # each row keeps only the items it may recommend (fewer than k when few are left)
            kept = [(i, v) for i, v in zip(idx, vals, strict=True) if v != float("-inf")]
            out.append(([str(self.dataset.item_ids[i]) for i, _ in kept], [v for _, v in kept]))
        return out

    def recommend_users(
        self, raw_users: list[str], k: int = 10, exclude_seen: bool = True
    ) -> list[Recommendation]:
        raw_users = _id_list(raw_users, "user")
        unknown = [u for u in raw_users if not self._knows_user(u)]
        if unknown:
            raise UnknownIdError(
                f"unknown user id(s) {', '.join(map(repr, unknown[:10]))}"
                f"{' ...' if len(unknown) > 10 else ''} (the checkpoint knows "
                f"{self.dataset.n_users} users)"
            )
        users = [self.dataset.user_index(u) for u in raw_users]
        histories = [self.dataset.sequence(u) for u in users]
        times = None
        if self.model.needs_timestamps:
            times = [self.dataset.times(u) for u in users]
        results = self._top_k(histories, users, k, exclude_seen, times)  # type: ignore[arg-type]
        return [
            Recommendation(q, items, scores)
            for q, (items, scores) in zip(raw_users, results, strict=True)
        ]

    def recommend_history(
        self, raw_items: list[str], k: int = 10, exclude_seen: bool = True
    ) -> Recommendation:
        raw_items = _id_list(raw_items, "item", allow_empty=True)
        if not raw_items:
            raise RecDenoiserError("the history is empty: give at least one item id")
        name = self.checkpoint.config.model.name
        if self.model.needs_timestamps:
            raise RecDenoiserError(
                f"{name} needs the times of the history's interactions; recommend for known "
                "users (--users) instead"
            )
        if self.model.uses_user_ids:
            raise RecDenoiserError(
                f"{name} scores with a user embedding, so an anonymous history cannot be scored; "
                "recommend for known users (--users) instead"
            )
        unknown = [i for i in raw_items if not self._knows_item(i)]
        if unknown:
            raise UnknownIdError(
                f"unknown item id(s) in the history: {', '.join(map(repr, unknown[:10]))}"
                f"{' ...' if len(unknown) > 10 else ''}"
            )
        history = np.array([self.dataset.item_index(i) for i in raw_items], dtype=np.int64)
        items, scores = self._top_k([history], [0], k, exclude_seen)[0]
        return Recommendation(" ".join(raw_items), items, scores)

    def _knows_user(self, raw: str) -> bool:
        try:
            self.dataset.user_index(raw)
        except UnknownIdError:
            return False
        return True

    def _knows_item(self, raw: str) -> bool:
        try:
            self.dataset.item_index(raw)
        except UnknownIdError:
            return False
        return True


def _id_list(ids: object, kind: str, allow_empty: bool = False) -> list[str]:
    """Raw ids as strings; a bare string is refused (it would be read character by character)."""
    if isinstance(ids, str | bytes) or not isinstance(ids, list | tuple | np.ndarray):
        raise RecDenoiserError(f"give the {kind} ids as a list, e.g. [{ids!r}]")
    out = [str(i) for i in ids]
    if not out and not allow_empty:
        raise RecDenoiserError(f"no {kind} ids given")
    return out
