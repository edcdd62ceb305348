"""The shared real datasets, through the registry, match their published statistics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recdenoiser.data import LeaveOneOutSplit, load_dataset

DATA_DIR = (
    Path(os.environ["RECDENOISER_DATA_DIR"])
    if os.environ.get("RECDENOISER_DATA_DIR")
    else (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
)


@pytest.mark.parametrize(
    ("name", "relpath", "users", "items", "interactions"),
    [
        ("beauty", "beauty/Beauty.txt", 22_363, 12_101, 198_502),
        ("games", "games/Video.txt", 31_013, 23_715, 287_107),
        ("ml-1m", "ml-1m/ml-1m.txt", 6_040, 3_416, 999_611),
    ],
)
def test_published_counts(
    tmp_path: Path, name: str, relpath: str, users: int, items: int, interactions: int
) -> None:
    if not (DATA_DIR / relpath).exists():
        pytest.skip("shared data not present")
    ds = load_dataset(name, data_dir=DATA_DIR, cache_dir=tmp_path)
    stats = ds.stats()
    assert (stats["users"], stats["items"], stats["interactions"]) == (users, items, interactions)
    assert ds.meta["sha256"] is not None
    split = LeaveOneOutSplit.from_dataset(ds)
    assert len(split.train_items) + 2 * len(split.eval_users) == interactions


@pytest.mark.skipif(
    not (DATA_DIR / "beauty" / "beauty_time.txt").exists(), reason="shared data not present"
)
def test_beauty_time_matches_beauty(tmp_path: Path) -> None:
    plain = load_dataset("beauty", data_dir=DATA_DIR, cache_dir=tmp_path)
    timed = load_dataset("beauty-time", data_dir=DATA_DIR, cache_dir=tmp_path)
    assert timed.timestamps is not None
    assert timed.user_ids.tolist() == plain.user_ids.tolist()
    # equal timestamps keep file order, so the sequences are those of Beauty.txt
    assert timed.item_ids[timed.items].tolist() == plain.item_ids[plain.items].tolist()
