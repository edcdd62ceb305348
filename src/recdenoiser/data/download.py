"""Downloading raw datasets: streamed, checked, atomically renamed, optionally extracted.

A download is streamed to a temporary file next to its destination and renamed into place only
once it is complete (as many bytes as the server announced), is not empty, is not an HTML page
(what servers send for a missing file or a login wall, often with status 200), is a readable
archive when it is one (a gzip or zip file is read to its end, which finds a truncated transfer
even when the server announced no size) and matches its published checksum. Many official
sources publish no checksum: such files are still accepted, and their sha256 is logged as a
warning and saved next to the file (``FILE.sha256``), after all other checks passed, so the user
can pin it. An interrupted download leaves nothing that counts as present; an existing file that
fails these checks (left by an older version) is downloaded again.

Nothing here runs at install or import time; downloads happen only when a user asks for them
(``recdenoiser prepare NAME --download`` or ``load_dataset(..., download=True)``).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from recdenoiser.data.registry import DATASETS, RawSource, raw_path, resolve_data_dir
from recdenoiser.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["download", "download_dataset", "extract", "file_digest"]

_CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


# how an HTML page starts (after a BOM and white space, lower-cased); no data file starts so
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive


def _content_problem(path: Path) -> str | None:
    """Why a downloaded file is not the data that was asked for, or None."""
    with path.open("rb") as fh:
        head = fh.read(512)
    if not head:
        return "the server sent an empty file"
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if start.startswith(_HTML_STARTS):
        return (
            "the server sent an HTML page instead of the data file (an error or login page; "
            "check the address in a browser)"
        )
    return None


def _archive_problem(path: Path, name: str, member: str | None) -> str | None:
    """Why ``path`` (to be stored as ``name``) is not a complete, readable archive, or None.

    Gzip files (by their first bytes) are decompressed to the end, which checks their length
    and CRC; zip files (by their first bytes or a ``.zip`` name) must have their directory, and
    every member must read back with the right CRC. With ``member`` the file must be one of the
    two and hold it. Other files are not archives: None.
    """
    with path.open("rb") as fh:
        head = fh.read(4)
    try:
        if head.startswith(_GZIP_MAGIC):
            with gzip.open(path, "rb") as src:
                while src.read(_CHUNK):
                    pass
            return None
        if head.startswith(_ZIP_MAGICS) or name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
                if bad is not None:
                    return f"the zip archive is corrupt (member {bad!r} fails its CRC check)"
                if member is not None and member not in zf.namelist():
                    return f"the zip archive does not hold {member!r}"
            return None
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as exc:
        kind = "gzip" if head.startswith(_GZIP_MAGIC) else "zip"
        return f"the {kind} archive is truncated or corrupt ({exc})"
    except (NotImplementedError, RuntimeError) as exc:  # unsupported compression, encryption
        return f"the zip archive cannot be read ({exc})"
    if member is not None:
        return f"not a zip or gzip archive, so {member!r} cannot be extracted from it"
    return None


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The body size the server announced, when it announced a usable one."""
    value = response.headers.get("Content-Length")
    if value is None or response.headers.get("Content-Encoding"):
        return None
    try:
        size = int(value)
    except ValueError:
        return None
    return size if size >= 0 else None


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        Path(tmp_name).replace(path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


#: a partial download untouched for this long belongs to a process that was killed
STALE_PART_SECONDS = 600.0


def _remove_stale_parts(dest: Path) -> None:
    """Delete partial downloads of ``dest`` left by a killed process (``kill -9``, power loss).

    An interrupted download normally removes its own temporary file; one that could not (killed
    outright) leaves ``.NAME.*.part`` beside ``dest``. Files still being written by another
    process are recent, so only those untouched for :data:`STALE_PART_SECONDS` are removed.
    """
    now = time.time()
    for part in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        try:
            if now - part.stat().st_mtime >= STALE_PART_SECONDS:
                part.unlink()
                logger.info("removed %s, left by an interrupted download", part)
        except OSError:  # removed meanwhile by another process, or not ours to remove
            continue


_MISMATCH_NOTE = (
    "(the downloaded file was not kept; if this happens again, the file on the server has "
    "changed or the transfer is being altered)"
)


def _verify(path: Path, url: str, sha256: str | None, md5: str | None) -> str:
    """Check the checksums of ``path``; remove it and raise on mismatch. Returns its sha256."""
    actual = file_digest(path)
    if sha256 is not None and actual.lower() != sha256.lower():
        path.unlink(missing_ok=True)
        raise DataError(
            f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual} "
            f"{_MISMATCH_NOTE}"
        )
    if md5 is not None:
        actual_md5 = file_digest(path, "md5")
        if actual_md5.lower() != md5.lower():
            path.unlink(missing_ok=True)
            raise DataError(
                f"checksum mismatch for {url}: expected md5 {md5.lower()}, got {actual_md5} "
                f"{_MISMATCH_NOTE}"
            )
    return actual


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    *,
    md5: str | None = None,
    member: str | None = None,
    timeout: float = 60,
) -> Path:
    """Download ``url`` to ``dest`` and optionally extract one member.

    The body is streamed to a temporary file in ``dest``'s folder, checked (complete, not empty,
    not an HTML page, a readable archive if it is a gzip or zip file or ``member`` is given,
    checksums), then renamed to ``dest`` (so ``dest`` never holds a partial file). With no known
    checksum the sha256 is logged as a warning and written to ``dest.sha256``. An existing
    ``dest`` that passes the checksums (or, with none known, is neither empty nor an HTML page
    nor a broken archive) is reused without downloading; otherwise it is downloaded again.
    Temporary files of an earlier download that was killed outright are removed first.

    Args:
        url: an ``http://`` or ``https://`` address.
        dest: where the downloaded file is stored.
        sha256: expected sha256 (hex) of the downloaded file, or None.
        md5: expected MD5 (hex), for sources that publish only that.
        member: if given, extract it (see :func:`extract`) next to ``dest`` and return the
            extracted path instead of ``dest``.
        timeout: socket timeout in seconds.

    Returns:
        The downloaded file, or the extracted member.

    Raises:
        DataError: network failure, HTTP error, interrupted transfer, an empty or HTML
            response, a truncated or corrupt archive, checksum mismatch (both hashes in the
            message), or a missing archive member. Nothing is left at ``dest`` then.
    """
    if not url.startswith(("http://", "https://")):
        raise DataError(f"only http(s) downloads are supported, got {url!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and (sha256 is not None or md5 is not None):
        try:
            _verify(dest, url, sha256, md5)
        except DataError:
            logger.warning("existing %s does not match its checksum; downloading again", dest)
        else:
            logger.info("%s already downloaded and verified", dest)
            return extract(dest, member) if member else dest
    elif dest.is_file():
        problem = _content_problem(dest) or _archive_problem(dest, dest.name, member)
        if problem is None:
            logger.info("%s already downloaded (no known checksum to verify)", dest)
            return extract(dest, member) if member else dest
        logger.warning("existing %s is not usable (%s); downloading again", dest, problem)

    _remove_stale_parts(dest)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    logger.info("downloading %s -> %s", url, dest)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "recdenoiser"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                announced = _content_length(response)
                received = 0
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
        if announced is not None and received != announced:
            raise DataError(
                f"download of {url} was interrupted: received {received} of {announced} bytes "
                "(nothing was saved; try again)"
            )
        problem = _content_problem(tmp)
        if problem is None:
            logger.info("checking the downloaded %s", dest.name)
            problem = _archive_problem(tmp, dest.name, member)
        if problem is not None:
            raise DataError(f"download of {url} failed: {problem}; nothing was saved (try again)")
        actual = _verify(tmp, url, sha256, md5)
        sidecar = dest.with_name(dest.name + ".sha256")
        if sha256 is None:
            _write_text_atomic(sidecar, f"{actual}  {dest.name}\n")
        tmp.replace(dest)
    except urllib.error.HTTPError as exc:
        raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        raise DataError(f"download of {url} failed: {reason}") from None
    finally:
        tmp.unlink(missing_ok=True)
    if sha256 is None and md5 is None:
        logger.warning(
            "%s has no published checksum, so the download is not verified; its sha256 is %s "
            "(saved to %s; keep it to check later copies against it)",
            url,
            actual,
            sidecar,
        )
    elif sha256 is None:
        logger.info(
            "%s matches its published MD5; its sha256 is %s (saved to %s)", url, actual, sidecar
        )
    return extract(dest, member) if member else dest


_DELETE_HINT = (
    "; delete this file and download it again (e.g. recdenoiser prepare DATASET --download)"
)


def extract(archive: str | Path, member: str, out_dir: str | Path | None = None) -> Path:
    """Extract one member of a zip archive, or decompress a ``.gz`` file.

    Args:
        archive: a ``.zip`` or gzip file.
        member: for zip files, the member's name inside the archive; for gzip files, the name
            of the decompressed file.
        out_dir: output folder (default: the archive's folder). The member is stored by its
            base name; an existing output is kept.

    Returns:
        The extracted file.

    Raises:
        DataError: not an archive, member not found, or a corrupt archive; the message names
            the archive and says to delete it (and download it again).
    """
    archive = Path(archive)
    out = Path(out_dir) if out_dir is not None else archive.parent
    target = out / Path(member).name
    if target.is_file():
        return target
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=out)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as sink:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    if member not in zf.namelist():
                        raise DataError(
                            f"member {member!r} not in archive; it holds: "
                            f"{', '.join(zf.namelist()[:20])}",
                            archive,
                        )
                    with zf.open(member) as src:
                        shutil.copyfileobj(src, sink, _CHUNK)
            else:
                with archive.open("rb") as probe:
                    magic = probe.read(4)
                if magic.startswith(_ZIP_MAGICS):  # a zip without its directory: cut short
                    raise zipfile.BadZipFile("the zip directory at its end is missing")
                if not magic.startswith(_GZIP_MAGIC):
                    raise DataError(f"not a zip or gzip archive{_DELETE_HINT}", archive)
                with gzip.open(archive, "rb") as src:
                    shutil.copyfileobj(src, sink, _CHUNK)
        tmp.replace(target)
    except (zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"truncated or corrupt archive ({exc}){_DELETE_HINT}", archive) from None
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("extracted %s from %s", target.name, archive)
    return target


def download_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    source: int = 0,
    timeout: float = 60,
) -> Path:
    """Download (and extract) the raw file of a registered dataset into the data directory.

    Args:
        name: a name in :data:`~recdenoiser.data.registry.DATASETS`.
        data_dir: the data directory (argument > ``$RECDENOISER_DATA_DIR`` > ``./data``).
        source: index of the raw source to use, when the dataset lists several.
        timeout: socket timeout in seconds.

    Returns:
        The path of the file to read (what :func:`~recdenoiser.data.registry.locate` finds).

    Raises:
        DataError: the dataset has no download, or the download failed.
    """
    info = DATASETS.get(name)
    if not info.raw:
        raise DataError(f"dataset {name!r} has no official download")
    if not 0 <= source < len(info.raw):
        raise DataError(f"dataset {name!r} has {len(info.raw)} raw source(s), not #{source}")
    raw: RawSource = info.raw[source]
    root = resolve_data_dir(data_dir)
    dest = root / info.folder / raw.filename
    path = download(raw.url, dest, raw.sha256, md5=raw.md5, member=raw.member, timeout=timeout)
    expected = raw_path(info, raw, root)
    if path != expected:  # pragma: no cover - layout invariant
        raise DataError(f"downloaded file is at {path}, expected {expected}")
    return path
