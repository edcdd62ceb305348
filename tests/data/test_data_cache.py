"""load_dataset: format inference, cache hits, rebuilds, corrupt cache files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import recdenoiser.data.cache as cache_mod
from recdenoiser.data import load_dataset
from recdenoiser.data.cache import CACHE_DIR_ENV, infer_format, resolve_cache_dir
from recdenoiser.data.registry import DATA_DIR_ENV
from recdenoiser.errors import ConfigError, DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def write_seq(path: Path, n_users: int = 6, extra: str = "") -> Path:
    lines = [f"{u} " + " ".join(str(1 + (u + j) % 7) for j in range(6)) for u in range(n_users)]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_cache_hit_does_not_reread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = write_seq(tmp_path / "seq.txt")
    first = load_dataset(src, fmt="user-sequence", cache_dir=tmp_path / "cache", k_core=None)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("source re-read on a cache hit")

    monkeypatch.setattr(cache_mod, "read_interactions", boom)
    with caplog.at_level(logging.INFO, logger="recdenoiser.data.cache"):
        second = load_dataset(src, fmt="user-sequence", cache_dir=tmp_path / "cache", k_core=None)
    assert "from cache" in caplog.text
    assert second.items.tolist() == first.items.tolist()
    assert second.user_ids.tolist() == first.user_ids.tolist()
    assert second.meta["sha256"] == first.meta["sha256"]


def test_options_and_source_change_rebuild(tmp_path: Path) -> None:
    src = write_seq(tmp_path / "seq.txt")
    cache = tmp_path / "cache"
    a = load_dataset(src, fmt="user-sequence", cache_dir=cache, k_core=None)
    b = load_dataset(src, fmt="user-sequence", cache_dir=cache, k_core=2)
    assert a.meta["cache_key"] != b.meta["cache_key"]
    assert len(list(cache.glob("*.npz"))) == 2
    write_seq(src, n_users=7)
    os.utime(src, ns=(1, 1))  # a different mtime, so the content hash is recomputed
    c = load_dataset(src, fmt="user-sequence", cache_dir=cache, k_core=None)
    assert c.n_users == 7
    assert c.meta["sha256"] != a.meta["sha256"]


def test_corrupt_cache_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = write_seq(tmp_path / "seq.txt")
    cache = tmp_path / "cache"
    a = load_dataset(src, fmt="user-sequence", cache_dir=cache, k_core=None)
    (cached,) = cache.glob("*.npz")
    cached.write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="recdenoiser.data.cache"):
        b = load_dataset(src, fmt="user-sequence", cache_dir=cache, k_core=None)
    assert "rebuilding" in caplog.text
    assert b.items.tolist() == a.items.tolist()
    assert cached.stat().st_size > 100
    (cache / "hashes.json").write_text("{broken")
    assert load_dataset(src, fmt="user-sequence", cache_dir=cache, k_core=None).n_users == 6


def test_registry_name_with_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "beauty").mkdir(parents=True)
    write_seq(data / "beauty" / "Beauty.txt")
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    ds = load_dataset("beauty")
    assert ds.name == "beauty"
    assert ds.meta["options"]["k_core"] is None  # registry default for the preprocessed file
    assert ds.meta["default_max_len"] == 50
    assert resolve_cache_dir() == tmp_path / "cache"
    with pytest.raises(ConfigError, match="is read as 'user-sequence'"):
        load_dataset("beauty", fmt="user-item")


def test_missing_registry_file_and_unknown_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"recdenoiser prepare steam --download.*{DATA_DIR_ENV}"):
        load_dataset("steam", data_dir=tmp_path, cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="not a known dataset name"):
        load_dataset(tmp_path / "nothing.txt", cache_dir=tmp_path / "c")


def test_table_through_load_dataset(tmp_path: Path) -> None:
    ds = load_dataset(
        FIXTURES / "table.csv",
        columns={"user": "uid", "item": "iid", "timestamp": "ts"},
        cache_dir=tmp_path,
        k_core=None,
    )
    assert ds.user_ids.tolist() == ["alice", "bob"]
    # alice: i3 (2019-12-31) before i1 (2020-01-02)
    assert [ds.item_ids[i] for i in ds.sequence(0)] == ["i3", "i1"]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.txt", "1 2\n1 3\n2 2\n", "user-item"),
        ("a.txt", "1 2 100\n1 3 200\n2 2 100\n", "user-item-time"),
        ("a.txt", "1 2 3 4\n2 5\n3 6 7\n", "user-sequence"),
        ("ratings.dat", "1::2::5::9\n", "movielens"),
        ("r.csv", "a,b,5.0,100\n", "amazon-csv"),
    ],
)
def test_infer_format(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert infer_format(path) == expected


def test_infer_format_fixtures_and_ambiguity(tmp_path: Path) -> None:
    assert infer_format(FIXTURES / "amazon.json") == "amazon-json"
    assert infer_format(FIXTURES / "amazon_loose.json") == "amazon-json"
    assert infer_format(FIXTURES / "steam.json") == "steam"
    amb = tmp_path / "x.txt"
    amb.write_text("1 2 3\n2 3 4\n")
    with pytest.raises(DataError, match="cannot infer the data format"):
        infer_format(amb)
    with pytest.raises(DataError, match="header"):
        infer_format(FIXTURES / "table.csv")
