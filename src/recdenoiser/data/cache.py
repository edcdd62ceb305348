"""``load_dataset``: read, preprocess and cache a dataset given by registry name or file path.

The processed :class:`~recdenoiser.data.dataset.SequenceDataset` is stored as ``.npz`` under the
cache directory (argument > ``$RECDENOISER_CACHE_DIR`` > ``~/.cache/recdenoiser``), keyed by
the sha256 of the source file's contents, the reading/preprocessing options and
:data:`CACHE_VERSION`. Content hashes are themselves cached (``hashes.json``), keyed by the
file's resolved path, size and modification time, so big files are not rehashed on every call.
A corrupt cache entry is rebuilt, never fatal; a cache that cannot be written only logs.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recdenoiser.data.dataset import SequenceDataset
from recdenoiser.data.download import download_dataset, file_digest
from recdenoiser.data.preprocess import preprocess
from recdenoiser.data.readers import (
    MAPPING_HOW,
    READERS,
    ColumnMapping,
    _coerce_mapping,
    read_interactions,
)
from recdenoiser.data.registry import DATASETS, locate
from recdenoiser.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["CACHE_DIR_ENV", "CACHE_VERSION", "infer_format", "load_dataset", "resolve_cache_dir"]

CACHE_DIR_ENV = "RECDENOISER_CACHE_DIR"
#: Bump when reading or preprocessing changes in a way that alters the result.
CACHE_VERSION = 3
DEFAULT_K_CORE = 5


class _Default(enum.Enum):
    TOKEN = "default"


DEFAULT = _Default.TOKEN


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache directory.

    Precedence: ``cache_dir`` > ``$RECDENOISER_CACHE_DIR`` > ``~/.cache/recdenoiser``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "recdenoiser"


def content_sha256(path: Path, cache_dir: Path | None) -> str:
    """sha256 of a file's contents, remembered per (path, size, mtime) in ``hashes.json``."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    index_path = None if cache_dir is None else cache_dir / "hashes.json"
    index: dict[str, str] = {}
    if index_path is not None and index_path.is_file():
        try:
            loaded = json.loads(index_path.read_text())
            if isinstance(loaded, dict):
                index = {str(k): str(v) for k, v in loaded.items()}
        except (OSError, ValueError):
            logger.warning("ignoring unreadable hash index %s", index_path)
    if key in index:
        return index[key]
    digest = file_digest(path)
    if index_path is not None:
        index[key] = digest
        try:
            index_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = index_path.with_name(f".{index_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(index, indent=0, sort_keys=True))
            tmp.replace(index_path)
        except OSError as exc:
            logger.warning("cannot write hash index %s: %s", index_path, exc)
    return digest


def _first_text_line(path: Path, limit: int = 200) -> list[str]:
    try:
        return _first_text_line_unchecked(path, limit)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"cannot read the file ({type(exc).__name__}: {exc})", path) from None


def _first_text_line_unchecked(path: Path, limit: int = 200) -> list[str]:
    import gzip

    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    lines: list[str] = []
    with (
        gzip.open(path, "rt", encoding="utf-8", errors="replace")
        if gz
        else path.open("r", encoding="utf-8", errors="replace") as fh
    ):
        for line in fh:
            if line.strip():
                lines.append(line.strip())
            if len(lines) >= limit:
                break
    return lines


def infer_format(path: str | Path, columns: ColumnMapping | None = None) -> str:
    """Guess the reader format of a file from its name and first lines, conservatively.

    Rules: a column mapping or a ``.parquet``/``.tsv`` file means ``table``; ``::``-separated
    lines with 4 fields mean ``movielens``; JSON lines with ``reviewerID`` mean
    ``amazon-json``; dict literals with ``username``/``product_id`` mean ``steam``; a
    header-less ``a,b,rating,time`` CSV means ``amazon-csv``; whitespace-separated integer
    lines mean ``user-item`` (2 fields, users repeated), ``user-item-time`` (3 fields, users
    repeated) or ``user-sequence`` (one line per user). Anything else is ambiguous.

    Raises:
        DataError: the format cannot be inferred safely; pass ``fmt`` explicitly.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    if columns is not None:
        return "table"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        raise DataError(f"a Parquet table needs a column mapping ({MAPPING_HOW})", path)
    lines = _first_text_line(path)
    if not lines:
        raise DataError("file is empty", path)

    def ambiguous(why: str) -> DataError:
        return DataError(
            f"cannot infer the data format ({why}); give it with --format (prepare), "
            f"data.format (train) or fmt= (Python): one of {', '.join(READERS.names())}",
            path,
        )

    first = lines[0]
    if first.startswith("{"):
        if "'username'" in first and "'product_id'" in first:
            return "steam"
        if "reviewerID" in first and "asin" in first:
            return "amazon-json"
        raise ambiguous("JSON records without reviewerID/asin or username/product_id")
    if all(line.count("::") == 3 for line in lines):
        return "movielens"
    if all(line.count(",") == 3 for line in lines):
        fields = [line.split(",") for line in lines]
        if all(_is_number(f[2]) and _is_number(f[3]) for f in fields):
            return "amazon-csv"
    plain = [s for s in suffixes if s != ".gz"]
    if "," in first or "\t" in first or (plain and plain[-1] in (".csv", ".tsv", ".tab")):
        raise ambiguous(
            "a CSV/TSV table with a header? it is read by the 'table' format with a column "
            f"mapping: {MAPPING_HOW}"
        )
    rows = [line.split() for line in lines]
    if not all(all(_is_int(tok) for tok in row) for row in rows):
        raise ambiguous("not whitespace-separated integers")
    counts = {len(row) for row in rows}
    users = [row[0] for row in rows]
    repeated = len(set(users)) < len(users)
    if counts == {2}:
        return "user-item"
    if repeated and counts == {3}:
        return "user-item-time"
    if not repeated and min(counts) >= 2:
        if counts == {3}:
            raise ambiguous("3 integers per line: 'user-item-time' or 'user-sequence'")
        return "user-sequence"
    raise ambiguous(f"lines with {sorted(counts)} fields")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def load_dataset(
    source: str | Path,
    *,
    data_dir: str | Path | None = None,
    fmt: str | None = None,
    cache_dir: str | Path | None = None,
    min_rating: float | _Default | None = DEFAULT,
    k_core: int | _Default | None = DEFAULT,
    columns: ColumnMapping | Mapping[str, str | None] | None = None,
    sep: str | None = None,
    skip_bad_lines: bool = False,
    drop_duplicates: bool = False,
    download: bool = False,
    use_cache: bool = True,
) -> SequenceDataset:
    """Load a dataset by registry name or file path, using the processed-dataset cache.

    Args:
        source: a name in :data:`~recdenoiser.data.registry.DATASETS` (a ``str`` equal to a
            registered name is always the dataset) or a file path.
        data_dir: data directory for registry names (argument > ``$RECDENOISER_DATA_DIR`` >
            ``./data``).
        fmt: reader format; for paths it is inferred when omitted (see :func:`infer_format`).
        cache_dir: cache directory (argument > ``$RECDENOISER_CACHE_DIR`` >
            ``~/.cache/recdenoiser``).
        min_rating: rating threshold; default: the registry's for names, None for paths.
        k_core: k-core threshold; default: the registry's for names (None for the
            preprocessed files, 5 for raw downloads), 5 for paths. ``None``/0 disables it.
        columns: column mapping for the ``table`` format.
        sep: separator override (see :func:`~recdenoiser.data.readers.read_interactions`).
        skip_bad_lines: skip malformed lines with a counted warning instead of raising.
        drop_duplicates: remove exact duplicate interactions.
        download: for registry names, download the raw file when no local file exists.
        use_cache: read and write the cache (False always rebuilds and writes nothing).

    Returns:
        The processed dataset; ``meta`` holds the content sha256 and the cache key.

    Raises:
        DataError: missing or malformed data (see the readers and :func:`preprocess`).
        ConfigError: unknown dataset name or format, or an invalid option.
    """
    mapping = _coerce_mapping(columns)
    src_path = Path(source)
    options: dict[str, Any] = {}
    if isinstance(source, str) and source in DATASETS:
        name = source
        info = DATASETS.get(name)
        try:
            located = locate(name, data_dir)
        except DataError:
            if not download:
                raise
            download_dataset(name, data_dir)
            located = locate(name, data_dir)
        path, reader_fmt, options = located
        if fmt is not None and fmt != reader_fmt:
            raise ConfigError(
                f"dataset {name!r} is read as {reader_fmt!r}; do not give it another format "
                f"(--format / data.format / fmt=), got {fmt!r}"
            )
        default_k, default_min = options["k_core"], options["min_rating"]
        max_len = info.max_len
    else:
        if not src_path.exists():
            known = ", ".join(DATASETS.names())
            where = "" if src_path.is_absolute() else f" (file paths are relative to {Path.cwd()})"
            raise DataError(
                f"no such file{where}, and not a known dataset name (known: {known})", src_path
            )
        path = src_path
        if path.is_dir():
            raise DataError("is a directory, expected a file", path)
        reader_fmt = fmt if fmt is not None else infer_format(path, mapping)
        name = path.name.split(".")[0] or path.name
        default_k, default_min = DEFAULT_K_CORE, None
        max_len = None
    k = default_k if isinstance(k_core, _Default) else k_core
    mr = default_min if isinstance(min_rating, _Default) else min_rating

    root = resolve_cache_dir(cache_dir)
    digest = content_sha256(path, root if use_cache else None)
    expected = options.get("sha256")
    if expected is not None and digest != expected:
        logger.warning(
            "%s has sha256 %s, not the published %s; it is a different version of %s",
            path,
            digest,
            expected,
            name,
        )
    key_fields = {
        "version": CACHE_VERSION,
        "name": name,
        "sha256": digest,
        "fmt": reader_fmt,
        "min_rating": mr,
        "k_core": k,
        "drop_duplicates": drop_duplicates,
        "skip_bad_lines": skip_bad_lines,
        "columns": None if mapping is None else mapping.as_dict(),
        "sep": sep,
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    cache_file = root / f"{name}-{key[:20]}.npz"
    if use_cache and cache_file.is_file():
        try:
            dataset = SequenceDataset.load(cache_file)
        except (DataError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            logger.warning("cache file %s is unreadable (%s); rebuilding it", cache_file, exc)
            cache_file.unlink(missing_ok=True)
        else:
            if dataset.meta.get("cache_key") == key:
                logger.info("loaded %s from cache %s", name, cache_file)
                return dataset
            logger.warning("cache file %s does not match its key; rebuilding it", cache_file)

    try:
        df = read_interactions(
            path, reader_fmt, columns=mapping, sep=sep, skip_bad_lines=skip_bad_lines
        )
    except (EOFError, OSError, zlib.error) as exc:  # truncated or corrupt compressed files
        raise DataError(f"cannot read the file ({type(exc).__name__}: {exc})", path) from None
    dataset = preprocess(
        df,
        name=name,
        min_rating=mr,
        k_core=k,
        drop_duplicates=drop_duplicates,
        source=str(path),
    )
    dataset.meta["sha256"] = digest
    dataset.meta["cache_key"] = key
    if max_len is not None:
        dataset.meta["default_max_len"] = max_len
    if use_cache:
        try:
            dataset.save(cache_file)
            logger.info("cached %s at %s", name, cache_file)
        except OSError as exc:
            logger.warning("cannot write cache file %s: %s", cache_file, exc)
    return dataset
