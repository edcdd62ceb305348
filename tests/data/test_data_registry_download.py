"""Dataset registry, data-directory lookup and downloads from a local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import logging
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recdenoiser.data import DATASETS
from recdenoiser.data.download import download, download_dataset, extract
from recdenoiser.data.registry import DATA_DIR_ENV, locate, resolve_data_dir
from recdenoiser.errors import ConfigError, DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


# --------------------------------------------------------------------------------- registry
def test_registry_names_and_defaults() -> None:
    assert set(DATASETS.names()) >= {"ml-1m", "beauty", "games", "movies-tv", "steam"}
    assert {"beauty-time", "toys"} <= set(DATASETS.names())
    assert DATASETS.get("ml-1m").max_len == 200
    assert DATASETS.get("beauty").max_len == 50
    assert DATASETS.get("ml-1m").files[0].k_core is None
    assert DATASETS.get("steam").raw[0].k_core == 5
    assert DATASETS.get("games").files[0].sha256 == (
        "b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651"
    )


def test_unknown_dataset_lists_choices() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'ml-100m'; choose one of: beauty"):
        DATASETS.get("ml-100m")
    with pytest.raises(ConfigError, match="ml-1m"):
        locate("ml-100m")


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert resolve_data_dir() == Path("data")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"


def test_locate_preprocessed_then_raw(tmp_path: Path) -> None:
    raw = tmp_path / "ml-1m" / "ratings.dat"
    raw.parent.mkdir()
    raw.write_text("1::2::5::10\n")
    path, fmt, options = locate("ml-1m", tmp_path)
    assert (path, fmt, options["kind"], options["k_core"]) == (raw, "movielens", "raw", 5)
    (tmp_path / "ml-1m" / "ml-1m.txt").write_text("1 1\n")
    path, fmt, options = locate("ml-1m", tmp_path)
    assert (path.name, fmt, options["kind"], options["k_core"]) == (
        "ml-1m.txt",
        "user-item",
        "preprocessed",
        None,
    )


def test_locate_error_explains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError) as info:
        locate("beauty")
    message = str(info.value)
    assert str(tmp_path / "beauty" / "Beauty.txt") in message
    assert "reviews_Beauty_5.json.gz" in message
    assert "recdenoiser prepare beauty --download" in message
    assert DATA_DIR_ENV in message


# ------------------------------------------------------------------------------ downloads
@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 (ephemeral port) serving files from a temp folder."""
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            if self.path.startswith("/no-length/"):  # the file, without a Content-Length
                body = (root / self.path.removeprefix("/no-length/")).read_bytes()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True
                return
            if self.path == "/cut-short":  # announces 1000 bytes, sends 10, hangs up
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"1 2\n1 3\n1 ")
                self.wfile.flush()
                self.close_connection = True
                return
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_right_checksum(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    data = (FIXTURES / "ratings_amazon.csv").read_bytes()
    (root / "r.csv").write_bytes(data)
    dest = tmp_path / "out" / "r.csv"
    assert download(f"{base}/r.csv", dest, sha(data), timeout=5) == dest
    assert dest.read_bytes() == data
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".part")]
    # second call: verified local copy, no request needed
    (root / "r.csv").unlink()
    assert download(f"{base}/r.csv", dest, sha(data), timeout=5) == dest


def test_download_wrong_checksum(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    data = b"1 2\n"
    (root / "f.txt").write_bytes(data)
    dest = tmp_path / "out" / "f.txt"
    wrong = "0" * 64
    with pytest.raises(DataError, match=f"expected sha256 {wrong}, got {sha(data)}"):
        download(f"{base}/f.txt", dest, wrong, timeout=5)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_download_unknown_checksum_written(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    (root / "f.txt").write_bytes(b"abc")
    dest = tmp_path / "f.txt"
    download(f"{base}/f.txt", dest, timeout=5)
    assert (tmp_path / "f.txt.sha256").read_text().split()[0] == sha(b"abc")


def test_download_http_error(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{base}/missing.zip", tmp_path / "out" / "m.zip", timeout=5)
    assert list((tmp_path / "out").iterdir()) == []


def test_download_zip_member(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    with zipfile.ZipFile(root / "ml-1m.zip", "w") as zf:
        zf.write(FIXTURES / "ratings.dat", "ml-1m/ratings.dat")
        zf.writestr("ml-1m/README", "readme")
    digest = sha((root / "ml-1m.zip").read_bytes())
    out = download(f"{base}/ml-1m.zip", tmp_path / "ml-1m.zip", digest, member="ml-1m/ratings.dat")
    assert out == tmp_path / "ratings.dat"
    assert out.read_bytes() == (FIXTURES / "ratings.dat").read_bytes()
    with pytest.raises(DataError, match="member 'nope' not in archive"):
        extract(tmp_path / "ml-1m.zip", "nope")


def test_extract_gz(tmp_path: Path) -> None:
    gz = tmp_path / "a.json.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(b"hello")
    assert extract(gz, "a.json").read_bytes() == b"hello"
    (tmp_path / "plain").write_bytes(b"xx")
    with pytest.raises(DataError, match="not a zip or gzip"):
        extract(tmp_path / "plain", "p")


def test_download_dataset_into_data_dir(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``download_dataset`` puts the raw file where ``locate`` finds it (URL redirected)."""
    import dataclasses

    import recdenoiser.data.download as dl

    base, root = server
    (root / "steam_reviews.json.gz").write_bytes(
        gzip.compress((FIXTURES / "steam.json").read_bytes())
    )
    info = DATASETS.get("steam")
    local = dataclasses.replace(
        info, raw=(dataclasses.replace(info.raw[0], url=f"{base}/steam_reviews.json.gz"),)
    )
    monkeypatch.setattr(dl.DATASETS, "_items", {**dl.DATASETS._items, "steam": local})
    path = download_dataset("steam", tmp_path, timeout=5)
    assert path == tmp_path / "steam" / "steam_reviews.json.gz"
    assert locate("steam", tmp_path).path == path


def test_download_unknown_checksum_logged_for_pinning(
    server: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, root = server
    data = b"1 2\n1 3\n"
    (root / "f.txt").write_bytes(data)
    dest = tmp_path / "out" / "f.txt"
    with caplog.at_level(logging.WARNING, logger="recdenoiser"):
        assert download(f"{base}/f.txt", dest, timeout=5) == dest
    assert dest.read_bytes() == data
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(sha(data) in m and "not verified" in m for m in messages), messages
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.txt", "f.txt.sha256"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n",
        b"\xef\xbb\xbf\n  <HTML><head><title>Sign in</title></head></HTML>",
    ],
    ids=["empty", "doctype", "html-tag"],
)
@pytest.mark.parametrize("checksum", [False, True], ids=["no-checksum", "checksum"])
def test_download_rejects_empty_and_html(
    server: tuple[str, Path], tmp_path: Path, body: bytes, checksum: bool
) -> None:
    base, root = server
    (root / "ratings.csv").write_bytes(body)
    dest = tmp_path / "out" / "ratings.csv"
    expected = "0" * 64 if checksum else None
    match = "empty file" if not body else "HTML page"
    with pytest.raises(DataError, match=f"download of {base}/ratings.csv failed: .*{match}"):
        download(f"{base}/ratings.csv", dest, expected, timeout=5)
    assert list(dest.parent.iterdir()) == []  # no file, no .part, no .sha256


def test_download_cut_short_leaves_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    """A body shorter than its Content-Length is an error, not a file that counts as present."""
    base, root = server
    dest = tmp_path / "out" / "steam_reviews.json.gz"
    with pytest.raises(DataError, match=r"interrupted: received 10 of 1000 bytes"):
        download(f"{base}/cut-short", dest, timeout=5)
    assert list(dest.parent.iterdir()) == []
    # the next attempt downloads (nothing was kept that looks like a finished download)
    data = b"1 2\n"
    (root / "whole").write_bytes(data)
    assert download(f"{base}/whole", dest, timeout=5).read_bytes() == data


def test_download_removes_parts_left_by_a_killed_download(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    """kill -9 leaves a .part file; the next download removes it, not one being written."""
    import os
    import time

    base, root = server
    data = b"1 2\n"
    (root / "f.txt").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".f.txt.abc123.part"
    stale.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = out / ".f.txt.def456.part"  # another process, still downloading
    fresh.write_bytes(b"half")
    other = out / ".g.txt.abc123.part"  # another file's download: not ours
    other.write_bytes(b"half")
    os.utime(other, (old, old))
    dest = out / "f.txt"
    assert download(f"{base}/f.txt", dest, sha(data), timeout=5).read_bytes() == data
    assert not stale.exists()
    assert fresh.exists() and other.exists()


def test_download_replaces_an_existing_html_page(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    data = b"a,b,5.0,10\n"
    (root / "r.csv").write_bytes(data)
    dest = tmp_path / "r.csv"
    dest.write_bytes(b"<html><body>Service Unavailable</body></html>")  # left by an old version
    assert download(f"{base}/r.csv", dest, timeout=5).read_bytes() == data
    dest.write_bytes(b"kept")  # a usable file with no known checksum is not downloaded again
    assert download(f"{base}/r.csv", dest, timeout=5).read_bytes() == b"kept"


# ------------------------------------------------------------------- incomplete archives
def zip_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "built.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-1m/ratings.dat", (FIXTURES / "ratings.dat").read_bytes() * 50)
        zf.writestr("ml-1m/README", "readme")
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["gz", "zip"])
def test_download_truncated_archive_without_length_is_not_kept(
    server: tuple[str, Path], tmp_path: Path, kind: str
) -> None:
    """No Content-Length: the archive itself must be checked before it counts as downloaded."""
    base, root = server
    if kind == "gz":
        whole = gzip.compress((FIXTURES / "steam.json").read_bytes() * 20)
        name, member = "steam_reviews.json.gz", None
    else:
        whole = zip_bytes(tmp_path)
        name, member = "ml-1m.zip", "ml-1m/ratings.dat"
    (root / name).write_bytes(whole[: len(whole) // 2])
    dest = tmp_path / "out" / name
    with pytest.raises(DataError, match=f"download of {base}/no-length/{name} failed: .*trunc"):
        download(f"{base}/no-length/{name}", dest, member=member, timeout=5)
    assert list(dest.parent.iterdir()) == []  # no file, no .part, no .sha256
    (root / name).write_bytes(whole)
    out = download(f"{base}/no-length/{name}", dest, member=member, timeout=5)
    assert out.is_file() and (tmp_path / "out" / f"{name}.sha256").is_file()


def test_existing_truncated_archive_is_downloaded_again(
    server: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A truncated zip left by an older version is replaced, not reported as downloaded."""
    base, root = server
    whole = zip_bytes(tmp_path)
    (root / "ml-1m.zip").write_bytes(whole)
    dest = tmp_path / "out" / "ml-1m.zip"
    dest.parent.mkdir()
    cut = whole[: len(whole) // 2]
    dest.write_bytes(cut)
    (tmp_path / "out" / "ml-1m.zip.sha256").write_text(f"{sha(cut)}  ml-1m.zip\n")
    with caplog.at_level(logging.WARNING, logger="recdenoiser"):
        out = download(f"{base}/ml-1m.zip", dest, member="ml-1m/ratings.dat", timeout=5)
    assert out.read_bytes() == (FIXTURES / "ratings.dat").read_bytes() * 50
    assert dest.read_bytes() == whole
    assert any("downloading again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", ["gz", "zip", "plain"])
def test_extract_corrupt_archive_names_file_and_says_delete(tmp_path: Path, kind: str) -> None:
    if kind == "gz":
        data = gzip.compress(b"1 2\n" * 1000)
    elif kind == "zip":
        data = zip_bytes(tmp_path)
    else:
        data = b"1 2\n"
    archive = tmp_path / f"a.{kind}"
    archive.write_bytes(data[: len(data) // 2] if kind != "plain" else data)
    with pytest.raises(DataError) as info:
        extract(archive, "ml-1m/ratings.dat")
    message = str(info.value)
    assert str(archive) in message and "delete" in message
    assert ("truncated or corrupt" if kind != "plain" else "not a zip or gzip") in message
    assert not (tmp_path / "ratings.dat").exists()


@pytest.mark.parametrize(
    "body",
    [
        b"<head><title>404</title></head><body>Not Found</body>",
        b"\xef\xbb\xbf  <BODY>Access denied</BODY>",
        b"\n<!-- served by nginx -->\n<html><body>error</body></html>",
    ],
    ids=["head", "body", "comment"],
)
def test_download_rejects_html_without_doctype(
    server: tuple[str, Path], tmp_path: Path, body: bytes
) -> None:
    base, root = server
    (root / "r.json.gz").write_bytes(body)
    dest = tmp_path / "out" / "r.json.gz"
    with pytest.raises(DataError, match="HTML page"):
        download(f"{base}/r.json.gz", dest, timeout=5)
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize(
    "body",
    [b'{"reviewerID": "a", "asin": "b", "unixReviewTime": 1}\n', b'[{"a": "<html>"}]\n'],
    ids=["json-lines", "json-array"],
)
def test_download_keeps_json(server: tuple[str, Path], tmp_path: Path, body: bytes) -> None:
    base, root = server
    (root / "r.json").write_bytes(body)
    assert download(f"{base}/r.json", tmp_path / "r.json", timeout=5).read_bytes() == body


def test_checksum_mismatch_of_a_complete_file_is_not_called_partial(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = server
    (root / "f.txt").write_bytes(b"1 2\n")
    with pytest.raises(DataError, match="checksum mismatch") as info:
        download(f"{base}/f.txt", tmp_path / "f.txt", "0" * 64, timeout=5)
    assert "partial" not in str(info.value)
    assert "was not kept" in str(info.value)
