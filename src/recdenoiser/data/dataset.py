"""The processed dataset: per-user chronological item sequences with id maps back to raw ids.

Sequences are stored flat (``items`` concatenated over users, ``offsets`` marking each user's
slice) so that a million interactions load and save as a few NumPy arrays. Internal item ids are
``1..n_items``; ``PAD = 0`` is reserved for padding. Internal user ids are ``0..n_users-1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recdenoiser.data.readers import id_text
from recdenoiser.errors import DataError, UnknownIdError

PAD = 0


def _find_id(index: dict[str, int], raw: str | int | float) -> int | None:
    """``raw`` as written, else as the readers spell ids (:func:`id_text`)."""
    text = str(raw)
    found = index.get(text)
    return found if found is not None else index.get(id_text(text))


@dataclass
class SequenceDataset:
    """Chronological item sequences, one per user.

    Attributes:
        name: a label used in logs and run directories.
        items: int64 ``[n_interactions]``, internal item ids (1..n_items), user after user.
        offsets: int64 ``[n_users + 1]``; user ``u`` owns ``items[offsets[u]:offsets[u+1]]``.
        user_ids: raw user ids (str) indexed by internal user id.
        item_ids: raw item ids (str) indexed by internal item id; ``item_ids[0]`` is ``""`` (PAD).
        timestamps: int64 ``[n_interactions]`` aligned with ``items``, or ``None``.
        meta: free-form provenance (source file, preprocessing options, counts of dropped rows).
    """

    name: str
    items: np.ndarray
    offsets: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.items = np.asarray(self.items, dtype=np.int64)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.user_ids = np.asarray(self.user_ids, dtype=object).astype(str)
        self.item_ids = np.asarray(self.item_ids, dtype=object).astype(str)
        if self.timestamps is not None:
            self.timestamps = np.asarray(self.timestamps, dtype=np.int64)
        self._user_index: dict[str, int] | None = None
        self._item_index: dict[str, int] | None = None

    # ----------------------------------------------------------------------------------- sizes
    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_items(self) -> int:
        """Number of real items; valid internal ids are ``1..n_items``."""
        return len(self.item_ids) - 1

    @property
    def n_interactions(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def times(self, user: int) -> np.ndarray | None:
        if self.timestamps is None:
            return None
        return self.timestamps[self.offsets[user] : self.offsets[user + 1]]

    def stats(self) -> dict[str, float | int]:
        n_users, n_items, n_inter = self.n_users, self.n_items, self.n_interactions
        return {
            "users": n_users,
            "items": n_items,
            "interactions": n_inter,
            "avg_length": n_inter / max(n_users, 1),
            "density": n_inter / max(n_users * n_items, 1),
        }

    # ---------------------------------------------------------------------------- id mapping
    def user_index(self, raw_user: str | int | float) -> int:
        """Internal index of a raw user id, spelled as in the data or as the readers spell it
        (``'7.0'`` and ``7.0`` find user ``'7'``, the readers' id rule)."""
        if self._user_index is None:
            self._user_index = {u: i for i, u in enumerate(self.user_ids.tolist())}
        found = _find_id(self._user_index, raw_user)
        if found is None:
            raise UnknownIdError(f"unknown user id {raw_user!r} in dataset {self.name!r}")
        return found

    def item_index(self, raw_item: str | int | float) -> int:
        """Internal index of a raw item id (same spelling rule as :meth:`user_index`)."""
        if self._item_index is None:
            self._item_index = {it: i for i, it in enumerate(self.item_ids.tolist()) if i != PAD}
        found = _find_id(self._item_index, raw_item)
        if found is None:
            raise UnknownIdError(f"unknown item id {raw_item!r} in dataset {self.name!r}")
        return found

    # ------------------------------------------------------------------------------- storage
    def save(self, path: str | Path) -> None:
        """Write the dataset as one ``.npz`` file (no pickled objects)."""
        import json

        arrays: dict[str, np.ndarray] = {
            "items": self.items,
            "offsets": self.offsets,
            "user_ids": self.user_ids.astype(str),
            "item_ids": self.item_ids.astype(str),
            "meta": np.array(json.dumps({"name": self.name, **self.meta}, default=str)),
        }
        if self.timestamps is not None:
            arrays["timestamps"] = self.timestamps
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> SequenceDataset:
        import json

        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                name = meta.pop("name")
                return cls(
                    name=name,
                    items=z["items"],
                    offsets=z["offsets"],
                    user_ids=z["user_ids"],
                    item_ids=z["item_ids"],
                    timestamps=z["timestamps"] if "timestamps" in z.files else None,
                    meta=meta,
                )
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"not a recdenoiser dataset file ({exc})", path) from None
