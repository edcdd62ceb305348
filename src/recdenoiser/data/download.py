"""Downloading raw datasets: streamed, checksummed, atomically renamed, optionally extracted.

Nothing here runs at install or import time; downloads happen only when a user asks for them
(``recdenoiser prepare NAME --download`` or ``load_dataset(..., download=True)``).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
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


def _verify(path: Path, url: str, sha256: str | None, md5: str | None) -> str:
    """Check the checksums of ``path``; remove it and raise on mismatch. Returns its sha256."""
    actual = file_digest(path)
    if sha256 is not None and actual.lower() != sha256.lower():
        path.unlink(missing_ok=True)
        raise DataError(
            f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual} "
            "(the partial download was removed)"
        )
    if md5 is not None:
        actual_md5 = file_digest(path, "md5")
        if actual_md5.lower() != md5.lower():
            path.unlink(missing_ok=True)
            raise DataError(
                f"checksum mismatch for {url}: expected md5 {md5.lower()}, got {actual_md5} "
                "(the partial download was removed)"
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

    The body is streamed to a temporary file in ``dest``'s folder, verified, then renamed to
    ``dest`` (so ``dest`` never holds a partial file). With no known checksum the sha256 is
    logged and written to ``dest.sha256``. An existing ``dest`` that passes the checks is
    reused without downloading.

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
        DataError: network failure, HTTP error, checksum mismatch (both hashes in the
            message), or a missing archive member.
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
        logger.info("%s already downloaded (no known checksum to verify)", dest)
        return extract(dest, member) if member else dest

    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    logger.info("downloading %s -> %s", url, dest)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "recdenoiser"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                shutil.copyfileobj(response, out, _CHUNK)
        actual = _verify(tmp, url, sha256, md5)
        tmp.replace(dest)
    except urllib.error.HTTPError as exc:
        raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"download of {url} failed: {reason}") from None
    finally:
        tmp.unlink(missing_ok=True)
    if sha256 is None:
        logger.warning(
            "no published sha256 for %s; downloaded file has sha256 %s (written to %s.sha256)",
            url,
            actual,
            dest.name,
        )
        dest.with_name(dest.name + ".sha256").write_text(f"{actual}  {dest.name}\n")
    return extract(dest, member) if member else dest


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
        DataError: not an archive, member not found, or a corrupt archive.
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
                    magic = probe.read(2)
                if magic != b"\x1f\x8b":
                    raise DataError("not a zip or gzip archive", archive)
                with gzip.open(archive, "rb") as src:
                    shutil.copyfileobj(src, sink, _CHUNK)
        tmp.replace(target)
    except (zipfile.BadZipFile, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"corrupt archive ({exc})", archive) from None
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
