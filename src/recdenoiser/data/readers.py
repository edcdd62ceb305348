"""Readers for the interaction file formats used by sequential-recommendation papers.

Every reader returns a :class:`pandas.DataFrame` with columns ``user`` (str) and ``item`` (str)
and, when the format has them, ``timestamp`` (int64, unix seconds) and ``rating`` (float64). Rows
are in file order. :func:`read_interactions` is the entry point; formats are registered in
:data:`READERS`:

``user-item``
    ``user item`` per line, whitespace separated, integer ids (SASRec files such as
    ``ml-1m.txt``). Chronological within a user; no timestamp.
``user-sequence``
    ``user item item ...``, one user per line (S3Rec files such as ``Beauty.txt``).
``user-item-time``
    ``user item unix_time`` per line, integer ids.
``movielens``
    MovieLens ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``.
``amazon-json``
    Amazon review dumps (2014 and 2018), one JSON object per line, optionally gzipped; keys
    ``reviewerID``, ``asin``, ``unixReviewTime`` and (optional) ``overall``. The older "loose
    JSON" 2014 files whose lines are Python dict literals are read too.
``amazon-csv``
    Amazon ratings-only CSV without header: ``user,item,rating,timestamp``.
``steam``
    ``steam_reviews.json.gz`` as published for SASRec: one Python dict literal per line with keys
    ``username``, ``product_id`` and ``date`` (``YYYY-MM-DD``).
``table``
    Any CSV/TSV/Parquet file with a header, mapped through a :class:`ColumnMapping`.

Timestamps are whole unix seconds. Numeric times must be finite, ``>= 0`` (a negative number is
almost always a placeholder for a missing time) and fit in int64; integer-valued decimals such
as ``978300760.0`` are accepted everywhere, and the ``table`` format floors fractions of a
second (its dates too). Dates (``steam``, date columns of ``table``) are taken as they are,
including dates before 1970.

Ids are strings, spelled by one rule in every reader (:func:`id_text`): an id written as a
whole number with a trailing ``.0…`` is that integer (``1.0`` -> ``'1'``, ``42.000`` -> ``'42'``,
so a file mixing ``1`` and ``1.0`` has one user); anything else is kept as written (``001``,
``0.5`` and ``1e3`` stay as they are). Float values (a float column of a table or Parquet file,
which is what pandas makes of an integer column with a missing value; a JSON number) follow the
same rule (``1.0`` -> ``'1'``); a float too large to be an exact integer (``>= 2**53``) or not
finite is a bad row rather than a rounded id. The integer-id formats (``user-item``,
``user-item-time``, ``movielens``) accept only integers, optionally written with ``.0…``:
``1e3`` or ``2.5`` there are bad lines. Ids are never rounded, so two different ids in a file
never become one.

Missing ids: an empty cell, or one of the common spellings of a missing value
``NaN``, ``NA``, ``N/A``, ``NaT``, ``null`` and ``None`` (any case, surrounding spaces ignored:
the same list the ``table`` format applies to its time column), in an id field of a text format
(``user-item``, ``user-item-time``, ``user-sequence``, ``movielens``, ``amazon-csv``, CSV/TSV
``table``) or a text id column of a table, is a missing id: a bad line or row. In the JSON
formats (``amazon-json``, ``steam``) a missing value is ``null``, which is rejected; a JSON string
is an id as written (Steam user names are free text).

Bad input raises one :class:`~recdenoiser.errors.DataError` naming the file and the 1-based
line (for tables also the column, and the other lines or rows with the same problem). With
``skip_bad_lines=True`` bad lines are dropped, one warning gives their count and the first one,
and ``df.attrs["skipped_lines"]`` holds the count. Large files are parsed with
pandas' C parser; the slow line-by-line scan only runs when that fast path fails, to find the
offending lines.
"""

from __future__ import annotations

import ast
import csv
import functools
import gzip
import io
import json
import logging
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from recdenoiser.errors import ConfigError, DataError
from recdenoiser.registry import Registry

logger = logging.getLogger(__name__)

__all__ = [
    "READERS",
    "ColumnMapping",
    "ReadOptions",
    "ReadResult",
    "from_dataframe",
    "read_interactions",
]

# int: an integer id, str: any id (both kept as text); time: whole unix seconds >= 0
FieldKind = Literal["int", "float", "str", "time"]

#: Columns a reader may produce, in output order.
OUTPUT_COLUMNS = ("user", "item", "timestamp", "rating")


class ColumnMapping(BaseModel):
    """Names of the source columns that hold each field of an interaction table.

    Attributes:
        user: column with user ids.
        item: column with item ids.
        timestamp: optional column with times: numeric unix seconds or parseable date strings.
        rating: optional numeric rating column.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str
    item: str
    timestamp: str | None = None
    rating: str | None = None

    def as_dict(self) -> dict[str, str]:
        """Target field -> source column, for the fields that are set."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


@dataclass(frozen=True)
class ReadOptions:
    """Options passed to every reader."""

    columns: ColumnMapping | None = None
    sep: str | None = None
    skip_bad_lines: bool = False


@dataclass
class ReadResult:
    """What a reader returns: the good rows and the bad lines it found.

    ``bad`` holds ``(line, reason)`` pairs, 1-based lines (or rows for Parquet, see
    ``unit``). When the caller does not skip bad lines a reader may stop at the first one.
    """

    frame: pd.DataFrame
    bad: list[tuple[int, str]] = field(default_factory=list)
    unit: str = "line"


Reader = Callable[[Path, ReadOptions], ReadResult]

READERS: Registry[Reader] = Registry("data format")


# ------------------------------------------------------------------------------ public API
def read_interactions(
    path: str | Path,
    fmt: str,
    *,
    columns: ColumnMapping | Mapping[str, str | None] | None = None,
    sep: str | None = None,
    skip_bad_lines: bool = False,
) -> pd.DataFrame:
    """Read an interaction file into a ``user``/``item``[/``timestamp``][/``rating``] table.

    Args:
        path: the file (``.gz`` is decompressed transparently for the text formats).
        fmt: a format name registered in :data:`READERS`.
        columns: column mapping, required by (and only used by) the ``table`` format.
        sep: field separator override for ``user-item``, ``user-item-time``, ``amazon-csv``
            and ``table``.
        skip_bad_lines: drop malformed lines (one counted warning) instead of raising.

    Returns:
        The interactions in file order. ``df.attrs`` holds ``skipped_lines``,
        ``duplicate_rows``, ``source`` and ``format``.

    Raises:
        DataError: missing/empty/malformed file; the message names the file and line.
        ConfigError: unknown format or options that the format does not take.
    """
    reader = READERS.get(fmt)
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    if path.is_dir():
        raise DataError("is a directory, expected a file", path)
    mapping = _coerce_mapping(columns)
    if mapping is not None and fmt != "table":
        raise ConfigError(
            f"a column mapping ('columns') is only used by the 'table' format, not {fmt!r}"
        )
    if sep is not None and fmt not in _SEP_FORMATS:
        raise ConfigError(
            f"'sep' is not used by the {fmt!r} format (only by {', '.join(_SEP_FORMATS)})"
        )
    if path.stat().st_size == 0:
        raise DataError("file is empty", path)
    options = ReadOptions(columns=mapping, sep=sep, skip_bad_lines=skip_bad_lines)
    result = reader(path, options)
    df = _finish(result, path, fmt, skip_bad_lines)
    logger.debug("read %d interactions from %s (%s)", len(df), path, fmt)
    return df


def from_dataframe(
    df: pd.DataFrame,
    columns: ColumnMapping | Mapping[str, str | None],
    *,
    skip_bad_lines: bool = False,
) -> pd.DataFrame:
    """Normalise an in-memory table to the reader output schema.

    Args:
        df: any table holding at least the mapped user and item columns.
        columns: which columns hold user, item and (optionally) timestamp and rating.
        skip_bad_lines: drop rows with missing/unparseable values instead of raising.

    Returns:
        A new frame with columns ``user``, ``item`` and the optional fields that are mapped.

    Raises:
        DataError: missing columns (named, with those present listed) or bad values (the
            message gives the 0-based row position).
    """
    mapping = _coerce_mapping(columns)
    assert mapping is not None
    if len(df) == 0:
        raise DataError("table has no rows")
    result = _normalise_table(df, mapping, path=None, line_of=None, skip=skip_bad_lines)
    return _finish(result, None, "dataframe", skip_bad_lines)


# ----------------------------------------------------------------------------- internals
_SEP_FORMATS = ("user-item", "user-item-time", "amazon-csv", "table")
_WHITESPACE = r"\s+"

#: How to give a column mapping, from the command line, a config and Python (for messages).
MAPPING_HOW = (
    "recdenoiser prepare FILE --columns '{user: COL, item: COL, timestamp: COL}'; "
    "in a train config data.columns (--set data.columns='{user: COL, item: COL}'); "
    "in Python columns={'user': COL, 'item': COL}"
)


def column_mapping_problem(columns: Any) -> str | None:
    """Why ``columns`` is not a valid column mapping, in one line; None when it is valid."""
    fields = list(ColumnMapping.model_fields)
    valid = f"valid keys: {', '.join(fields)}; user and item are required"
    if not isinstance(columns, Mapping):
        return (
            f"expected a mapping like {{user: COL, item: COL, timestamp: COL}}, "
            f"got {type(columns).__name__} {columns!r}"
        )
    problems = [f"unknown key {k!r}" for k in columns if k not in fields]
    problems += [f"missing key {k!r}" for k in ("user", "item") if columns.get(k) is None]
    problems += [
        f"{k!r}: expected a column name (a string), got {v!r}"
        for k, v in columns.items()
        if k in fields and v is not None and not isinstance(v, str)
    ]
    return f"{'; '.join(problems)} ({valid})" if problems else None


def column_mapping(columns: Any, name: str = "column mapping") -> ColumnMapping:
    """``columns`` as a :class:`ColumnMapping`; one-line ConfigError naming ``name`` otherwise."""
    if isinstance(columns, ColumnMapping):
        return columns
    problem = column_mapping_problem(columns)
    if problem is None:
        try:
            return ColumnMapping(**dict(columns))
        except (TypeError, ValueError) as exc:  # pragma: no cover - the checks above cover it
            problem = " ".join(str(exc).split())
    shown = dict(columns) if isinstance(columns, Mapping) else columns
    raise ConfigError(f"invalid {name} {shown!r}: {problem}")


def _coerce_mapping(
    columns: ColumnMapping | Mapping[str, str | None] | None,
) -> ColumnMapping | None:
    return None if columns is None else column_mapping(columns)


def _finish(result: ReadResult, path: Path | None, fmt: str, skip_bad_lines: bool) -> pd.DataFrame:
    """Raise on or count bad lines, validate emptiness, count duplicates, set ``attrs``."""
    where = path if path is not None else "<dataframe>"
    bad = sorted(result.bad)
    if bad and not skip_bad_lines:
        line, reason = bad[0]
        if result.unit == "line" and path is not None:
            raise DataError(reason, path, line)
        raise DataError(f"{result.unit} {line}: {reason}", path)
    df = _spell_ids(result.frame)
    if len(df) == 0:
        if bad:
            raise DataError(
                f"no valid interactions: all {len(bad)} {result.unit}s are malformed "
                f"(first at {result.unit} {bad[0][0]}: {bad[0][1]})",
                path,
            )
        raise DataError("file has no interactions (only blank lines)", path)
    if bad:
        warnings.warn(
            f"skipped {len(bad)} malformed {result.unit}s in {where} "
            f"(first at {result.unit} {bad[0][0]}: {bad[0][1]})",
            stacklevel=3,
        )
    df = df.reset_index(drop=True)
    subset = [c for c in ("user", "item", "timestamp") if c in df.columns]
    n_dup = int(df.duplicated(subset=subset).sum())
    if n_dup:
        warnings.warn(
            f"{n_dup} duplicate rows (same {', '.join(subset)}) in {where}; kept (to remove "
            "them: recdenoiser prepare --drop-duplicates, data.drop_duplicates=true in a train "
            "config, drop_duplicates=True in Python)",
            stacklevel=3,
        )
    df.attrs["skipped_lines"] = len(bad)
    df.attrs["duplicate_rows"] = n_dup
    df.attrs["source"] = None if path is None else str(path)
    df.attrs["format"] = fmt
    return df


_DAMAGED_HINT = (
    "; the file is truncated or corrupt: if it was downloaded, delete it and download it again"
)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    if _is_gzip(path):
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot decompress gzip file ({exc}){_DAMAGED_HINT}", path) from None
    return path.read_bytes()


def _iter_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """Yield ``(line_number, text)``; ``text`` is None for a line that is not valid UTF-8."""
    fh: Any = gzip.open(path, "rb") if _is_gzip(path) else path.open("rb")  # noqa: SIM115
    with fh:
        try:
            for number, raw in enumerate(fh, start=1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield number, None
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot read file ({exc}){_DAMAGED_HINT}", path) from None


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# ------------------------------------------------------------------------------------ ids
# Spellings of a missing value in a text field, compared stripped and lower-cased: CSV files
# keep them as text (pandas writes NaN as '' with to_csv and as 'nan' with astype(str)).
_MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "nat", "null", "none"})
_WHOLE_DECIMAL = re.compile(r"([+-]?\d+)\.0+")
_INT_ID = r"[+-]?\d+(?:\.0+)?"  # what the integer-id formats accept


def id_text(text: str) -> str:
    """The id that ``text`` spells; the one rule every reader applies to ids.

    A whole number with a trailing ``.0…`` is that integer (``'1.0'`` -> ``'1'``,
    ``'42.000'`` -> ``'42'``, exactly, however many digits); anything else is kept as written
    (``'001'``, ``'0.5'``, ``'1e3'``). The spelling of an integer-valued float (``str(1.0)``)
    thus gives the same id as the integer.
    """
    m = _WHOLE_DECIMAL.fullmatch(text)
    return str(int(m.group(1))) if m else text


def _spell_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Apply :func:`id_text` to the ``user`` and ``item`` columns (only values with a dot)."""
    for name in ("user", "item"):
        if name in df.columns and len(df):
            col = df[name]
            dotted = col.str.contains(".", regex=False).to_numpy(dtype=bool, na_value=False)
            if dotted.any():
                col = col.astype(object)
                col[dotted] = col[dotted].map(id_text)
                df[name] = col.astype(str)
    return df


def _is_missing_text(text: str) -> bool:
    return text.strip().lower() in _MISSING_TEXT


def _missing_id(value: Any) -> str:
    """``missing id``, with the text when it is one of the spellings of a missing value."""
    return f"missing id ({value!r})" if isinstance(value, str) and value.strip() else "missing id"


def _int_id_problem(token: str) -> str | None:
    """Why ``token`` (stripped) is not an integer id, or None."""
    if _is_missing_text(token):
        return _missing_id(token)
    if re.fullmatch(_INT_ID, token) is None:
        return f"expected an integer, got {token!r}"
    if not _INT64_MIN <= int(token.split(".")[0]) <= _INT64_MAX:
        return f"integer out of the 64-bit range: {token!r}"
    return None


def _convert(token: str, kind: FieldKind, name: str) -> int | float | str:
    """Parse field ``name``; raises ValueError with a readable message that names it.

    Ids (``int``: an integer id, ``str``: any id) are returned as text; :func:`_finish` applies
    :func:`id_text` to them.
    """
    if kind == "time":
        return _as_time(token, name)
    if kind == "int":
        problem = _int_id_problem(token)
        if problem is not None:
            raise ValueError(f"{name}: {problem}")
        return token
    if kind == "float":
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {token!r}") from None
        if math.isnan(value):
            raise ValueError(f"{name}: expected a number, got {token!r}")
        return value
    if _is_missing_text(token):
        raise ValueError(f"{name}: {_missing_id(token)}")
    return token


def _show(value: Any) -> str:
    """A value for an error message (numpy scalars shown as the Python value)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


_EXACT_FLOAT = 2.0**53  # every integer below this is exact as a float64


# ------------------------------------------------------------------------------ timestamps
# What is wrong with one timestamp value (0: nothing); see _time_code and _parse_times.
_T_OK, _T_UNREADABLE, _T_MISSING, _T_NOT_FINITE, _T_FRACTION, _T_NEGATIVE, _T_TOO_LARGE = range(7)
# a column that mixes the two forms: the minority form is the error
_T_DATE_AMONG_NUMBERS, _T_NUMBER_AMONG_DATES = 7, 8
_DECIMAL_INT = re.compile(r"([+-]?\d+)\.0*")


def _time_message(code: int, value: Any) -> str:
    """Why a timestamp value is rejected (``_T_UNREADABLE`` is said by the caller)."""
    shown = _show(value)
    if code == _T_MISSING:
        return "missing timestamp"
    if code == _T_NOT_FINITE:
        return f"timestamp is not finite: {shown}"
    if code == _T_FRACTION:
        return f"expected an integer, got {shown}"
    if code == _T_NEGATIVE:
        return (
            f"negative timestamp {shown} (expected unix seconds >= 0; a negative time is "
            "usually a placeholder for a missing one)"
        )
    if code == _T_TOO_LARGE:
        return f"timestamp {shown} is too large for 64-bit unix seconds"
    raise AssertionError(f"no message for timestamp problem {code}")


def _time_code(value: int | float) -> int:
    """What is wrong with a numeric timestamp that must be whole unix seconds."""
    if isinstance(value, float):
        if math.isnan(value):
            return _T_MISSING
        if math.isinf(value):
            return _T_NOT_FINITE
        if not value.is_integer():
            return _T_FRACTION
    if value < 0:
        return _T_NEGATIVE
    if value > _INT64_MAX:
        return _T_TOO_LARGE
    return _T_OK


def _as_time(value: Any, key: str) -> int:
    """Whole unix seconds from an int, an integer-valued float, or the text of either."""
    original = value
    if isinstance(value, str):
        text = value.strip()
        decimal = _DECIMAL_INT.fullmatch(text)  # "978300760.0": exact, not through a float
        try:
            value = int(decimal.group(1) if decimal else text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{key}: expected an integer, got {original!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: expected an integer, got {original!r}")
    code = _time_code(value)
    if code != _T_OK:
        raise ValueError(f"{key}: {_time_message(code, value)}")
    return int(value)


# ids ("int" and "str") are read as text, so that they are never rounded through a number
_DTYPES: dict[FieldKind, Any] = {"int": str, "float": np.float64, "str": str, "time": np.int64}


@dataclass(frozen=True)
class _FixedLayout:
    """A delimited text format with a fixed number of typed fields per line."""

    names: tuple[str, ...]
    kinds: tuple[FieldKind, ...]
    field_names: tuple[str, ...]  # for error messages


def _frame_from_columns(layout: _FixedLayout, cols: list[Any]) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for name, kind, values in zip(layout.names, layout.kinds, cols, strict=True):
        data[name] = pd.Series(np.asarray(values, dtype=_DTYPES[kind]))
    df = pd.DataFrame(data)
    return _canonical(df)


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Columns in canonical order with canonical dtypes."""
    out = pd.DataFrame(
        {
            "user": df["user"].astype(str),
            "item": df["item"].astype(str),
        }
    )
    if "timestamp" in df.columns:
        out["timestamp"] = df["timestamp"].to_numpy(dtype=np.int64)
    if "rating" in df.columns:
        out["rating"] = df["rating"].to_numpy(dtype=np.float64)
    return out


def _read_fixed(
    path: Path,
    layout: _FixedLayout,
    sep: str,
    options: ReadOptions,
    *,
    preprocess: Callable[[bytes], bytes] | None = None,
    split: Callable[[str], list[str]] | None = None,
) -> ReadResult:
    """Fast C-parser read of a fixed-width delimited file; line scan when it fails."""
    n = len(layout.names)
    try:
        source: Any = path
        if preprocess is not None:
            source = io.BytesIO(preprocess(_read_bytes(path)))
        with warnings.catch_warnings():
            # a failed cast ("inf" as int64) warns before it raises; the scan reports the line
            warnings.simplefilter("ignore", RuntimeWarning)
            df = pd.read_csv(
                source,
                sep=sep,
                header=None,
                dtype={i: _DTYPES[k] for i, k in enumerate(layout.kinds)},
                engine="c",
                compression="infer" if preprocess is None else None,
                skip_blank_lines=True,
                quoting=csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE,
                na_filter=True,
                keep_default_na=False,
                na_values=[""],
            )
        if df.shape[1] == n and not df.isna().to_numpy().any():
            df.columns = list(layout.names)
            kinds = dict(zip(layout.names, layout.kinds, strict=True))
            times = [name for name, kind in kinds.items() if kind == "time"]
            ids_ok = True
            for name, kind in kinds.items():
                if kind == "int":
                    df[name] = df[name].str.strip()
                    ids_ok = ids_ok and _valid_int_ids(df[name])
                elif kind == "str":
                    ids_ok = ids_ok and not _missing_texts(df[name]).any()
            if not ids_ok:
                logger.debug("fast parse of %s found a bad id; scanning lines", path)
            elif not (df[times] < 0).to_numpy().any():
                return ReadResult(_canonical(df))
            else:
                logger.debug("fast parse of %s found a negative timestamp; scanning lines", path)
        else:
            logger.debug("fast parse of %s found a bad shape; scanning lines", path)
    except pd.errors.EmptyDataError:
        return ReadResult(_canonical(pd.DataFrame({name: [] for name in layout.names})))
    except (ValueError, OverflowError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        logger.debug("fast parse of %s failed (%s); scanning lines", path, exc)
    return _scan_fixed(path, layout, sep, options, split)


def _missing_texts(col: pd.Series) -> np.ndarray:
    """Which values of a text column are spellings of a missing value."""
    return col.str.strip().str.lower().isin(_MISSING_TEXT).to_numpy(dtype=bool)


def _valid_int_ids(col: pd.Series) -> bool:
    """Whether every value of a (stripped) text column is an integer id, vectorized."""
    if not col.str.fullmatch(_INT_ID).to_numpy(dtype=bool, na_value=False).all():
        return False
    long = col.str.len().to_numpy() > 18  # may be outside the 64-bit range
    return not any(_int_id_problem(token) for token in col[long])


def _scan_fixed(
    path: Path,
    layout: _FixedLayout,
    sep: str,
    options: ReadOptions,
    split: Callable[[str], list[str]] | None,
) -> ReadResult:
    n = len(layout.names)
    if split is None:
        if sep == _WHITESPACE:

            def split(s: str) -> list[str]:
                return s.split()

        elif sep == ",":

            def split(s: str) -> list[str]:
                return next(csv.reader([s]))

        else:

            def split(s: str) -> list[str]:
                return s.rstrip("\r\n").split(sep)

    cols: list[list[Any]] = [[] for _ in range(n)]
    bad: list[tuple[int, str]] = []
    expected = ", ".join(layout.field_names)
    for number, text in _iter_lines(path):
        if text is None:
            bad.append((number, "line is not valid UTF-8"))
        elif text.strip():
            parts = split(text.rstrip("\r\n"))
            if len(parts) != n:
                bad.append(
                    (
                        number,
                        f"expected {n} fields ({expected}), found {len(parts)}: {text.strip()!r}",
                    )
                )
            else:
                try:
                    values = [
                        _convert(p.strip() if k != "str" else p, k, name)
                        for p, k, name in zip(parts, layout.kinds, layout.field_names, strict=True)
                    ]
                except ValueError as exc:
                    bad.append((number, f"{exc} in {text.strip()!r}"))
                else:
                    for col, value in zip(cols, values, strict=True):
                        col.append(value)
                    continue
        else:
            continue
        if not options.skip_bad_lines:
            break
    return ReadResult(_frame_from_columns(layout, cols), bad)


# --------------------------------------------------------------------------- formats
_USER_ITEM = _FixedLayout(("user", "item"), ("int", "int"), ("user", "item"))
_USER_ITEM_TIME = _FixedLayout(
    ("user", "item", "timestamp"), ("int", "int", "time"), ("user", "item", "unix_time")
)
_MOVIELENS = _FixedLayout(
    ("user", "item", "rating", "timestamp"),
    ("int", "int", "float", "time"),
    ("UserID", "MovieID", "Rating", "Timestamp"),
)
_AMAZON_CSV = _FixedLayout(
    ("user", "item", "rating", "timestamp"),
    ("str", "str", "float", "time"),
    ("user", "item", "rating", "timestamp"),
)


@READERS.register("user-item")
def _read_user_item(path: Path, options: ReadOptions) -> ReadResult:
    return _read_fixed(path, _USER_ITEM, options.sep or _WHITESPACE, options)


@READERS.register("user-item-time")
def _read_user_item_time(path: Path, options: ReadOptions) -> ReadResult:
    return _read_fixed(path, _USER_ITEM_TIME, options.sep or _WHITESPACE, options)


@READERS.register("movielens")
def _read_movielens(path: Path, options: ReadOptions) -> ReadResult:
    return _read_fixed(
        path,
        _MOVIELENS,
        "\t",
        options,
        preprocess=lambda data: data.replace(b"::", b"\t"),
        split=lambda s: s.split("::"),
    )


@READERS.register("amazon-csv")
def _read_amazon_csv(path: Path, options: ReadOptions) -> ReadResult:
    return _read_fixed(path, _AMAZON_CSV, options.sep or ",", options)


@READERS.register("user-sequence")
def _read_user_sequence(path: Path, options: ReadOptions) -> ReadResult:
    users: list[str] = []
    items: list[str] = []
    bad: list[tuple[int, str]] = []
    for number, text in _iter_lines(path):
        if text is None:
            bad.append((number, "line is not valid UTF-8"))
        else:
            parts = text.split()
            if not parts:
                continue
            missing = next((p for p in parts if _is_missing_text(p)), None)
            if missing is not None:
                bad.append((number, f"{_missing_id(missing)} in {text.strip()!r}"))
            elif len(parts) >= 2:
                users.extend([parts[0]] * (len(parts) - 1))
                items.extend(parts[1:])
                continue
            else:
                bad.append(
                    (number, f"expected a user followed by at least one item: {text.strip()!r}")
                )
        if not options.skip_bad_lines:
            break
    frame = pd.DataFrame({"user": pd.Series(users, dtype=str), "item": pd.Series(items, dtype=str)})
    return ReadResult(frame, bad)


def _parse_record(text: str, prefer_literal: bool) -> tuple[Any, bool]:
    """Parse a JSON line or a Python dict literal; returns (object, used_literal)."""
    order = (True, False) if prefer_literal else (False, True)
    for literal in order:
        try:
            if literal:
                return ast.literal_eval(text), True
            return json.loads(text), False
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            continue
    raise ValueError("unreadable JSON (neither a JSON object nor a Python dict literal)")


def _scan_records(
    path: Path,
    options: ReadOptions,
    extract: Callable[[dict[str, Any]], tuple[Any, ...]],
    names: tuple[str, ...],
    fast: Callable[[str], tuple[Any, ...] | None] | None = None,
) -> tuple[dict[str, list[Any]], list[int], list[tuple[int, str]]]:
    """Line-by-line record reader shared by the JSON-like formats."""
    cols: dict[str, list[Any]] = {name: [] for name in names}
    lines: list[int] = []
    bad: list[tuple[int, str]] = []
    prefer_literal = False
    for number, text in _iter_lines(path):
        if text is None:
            bad.append((number, "line is not valid UTF-8"))
        elif text.strip():
            try:
                values = fast(text) if fast is not None else None
                if values is None:
                    record, prefer_literal = _parse_record(text.strip(), prefer_literal)
                    if not isinstance(record, dict):
                        raise ValueError(f"expected an object, got {type(record).__name__}")
                    values = extract(record)
            except (ValueError, KeyError, TypeError) as exc:
                reason = str(exc) if not isinstance(exc, KeyError) else f"missing key {exc}"
                bad.append((number, reason))
            else:
                for name, value in zip(names, values, strict=True):
                    cols[name].append(value)
                lines.append(number)
                continue
        else:
            continue
        if not options.skip_bad_lines:
            break
    return cols, lines, bad


def _as_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: expected a number, got {value!r}") from None
    if math.isnan(out):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    return out


def _require_keys(rec: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in rec]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}; keys present: {sorted(rec)}")


def _as_id(value: Any, key: str) -> str:
    """The id of a JSON value: a string as written, an integer, or an exact integer float."""
    if (
        value is None
        or isinstance(value, (dict, list, bool))
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise ValueError(f"{key}: expected an id, got {value!r}")
    text = _object_id(value)
    if text is None:
        raise ValueError(f"{key}: {_float_id_problem(value)}")
    if not text.strip():
        raise ValueError(f"{key}: empty id")
    return text


@READERS.register("amazon-json")
def _read_amazon_json(path: Path, options: ReadOptions) -> ReadResult:
    def extract(rec: dict[str, Any]) -> tuple[Any, ...]:
        _require_keys(rec, ("reviewerID", "asin", "unixReviewTime"))
        rating = _as_float(rec["overall"], "overall") if "overall" in rec else math.nan
        return (
            _as_id(rec["reviewerID"], "reviewerID"),
            _as_id(rec["asin"], "asin"),
            _as_time(rec["unixReviewTime"], "unixReviewTime"),
            rating,
        )

    names = ("user", "item", "timestamp", "rating")
    cols, _, bad = _scan_records(path, options, extract, names)
    frame = pd.DataFrame(
        {
            "user": pd.Series(cols["user"], dtype=str),
            "item": pd.Series(cols["item"], dtype=str),
            "timestamp": np.asarray(cols["timestamp"], dtype=np.int64),
            "rating": np.asarray(cols["rating"], dtype=np.float64),
        }
    )
    if frame["rating"].isna().all():
        frame = frame.drop(columns="rating")
    return ReadResult(frame, bad)


_STR_LIT = r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
_STEAM_KEYS = {
    key: re.compile(rf"'{key}': {_STR_LIT}") for key in ("username", "product_id", "date")
}


def _steam_fast(text: str) -> tuple[Any, ...] | None:
    """Extract the three fields with regexes (much faster than literal_eval on long reviews).

    Returns None (full parse) when any key is not found as a plain string value. The keys come
    before the free-text ``text`` field in the published file, so the first match is the key.
    """
    if not text.lstrip().startswith("{"):
        return None
    values = []
    for key, pattern in _STEAM_KEYS.items():
        m = pattern.search(text)
        if m is None:
            return None
        try:
            value = ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError):
            return None
        if key != "date" and not str(value).strip():
            raise ValueError(f"{key}: empty id")
        values.append(value)
    return tuple(values)


@READERS.register("steam")
def _read_steam(path: Path, options: ReadOptions) -> ReadResult:
    def extract(rec: dict[str, Any]) -> tuple[Any, ...]:
        _require_keys(rec, ("username", "product_id", "date"))
        date = rec["date"]
        if not isinstance(date, str):
            raise ValueError(f"date: expected 'YYYY-MM-DD', got {date!r}")
        return _as_id(rec["username"], "username"), _as_id(rec["product_id"], "product_id"), date

    names = ("user", "item", "date")
    cols, lines, bad = _scan_records(path, options, extract, names, fast=_steam_fast)
    dates = pd.to_datetime(
        pd.Series(cols["date"], dtype=object), format="%Y-%m-%d", errors="coerce"
    )
    invalid = dates.isna().to_numpy()
    if invalid.any():
        for i in np.flatnonzero(invalid):
            bad.append((lines[i], f"date: expected 'YYYY-MM-DD', got {cols['date'][i]!r}"))
    keep = ~invalid
    frame = pd.DataFrame(
        {
            "user": pd.Series(cols["user"], dtype=str)[keep],
            "item": pd.Series(cols["item"], dtype=str)[keep],
            "timestamp": _to_unix_seconds(dates[keep]),
        }
    )
    return ReadResult(frame.reset_index(drop=True), bad)


def _to_unix_seconds(dates: pd.Series) -> np.ndarray:
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    delta = dates - pd.Timestamp("1970-01-01")
    return (delta // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


# ------------------------------------------------------------------------------- table
@READERS.register("table")
def _read_table(path: Path, options: ReadOptions) -> ReadResult:
    mapping = options.columns
    if mapping is None:
        raise ConfigError(
            "the 'table' format needs a column mapping that names the user, item and (optional) "
            f"timestamp and rating columns: {MAPPING_HOW}"
        )
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read Parquet file ({exc})", path) from None
        if len(df) == 0:
            raise DataError("table has no rows", path)
        return _normalise_table(df, mapping, path, None, options.skip_bad_lines)
    sep = options.sep
    if sep is None:
        plain = suffixes[:-1] if suffixes and suffixes[-1] == ".gz" else suffixes
        sep = "\t" if plain and plain[-1] in (".tsv", ".tab") else ","
    wanted = set(mapping.as_dict().values())
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            engine="c",
            dtype={c: str for c in wanted},
            compression="infer",
            skip_blank_lines=True,
            keep_default_na=False,
            na_values=[""],
        )
    except pd.errors.EmptyDataError:
        raise DataError("file is empty", path) from None
    except pd.errors.ParserError as exc:
        line = _parser_error_line(exc)
        if line is None or not options.skip_bad_lines:
            raise DataError(f"malformed table ({_first_line(exc)})", path, line) from None
        return _read_table_skipping(path, sep, mapping, options)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read table ({_first_line(exc)})", path) from None
    if len(df) == 0:
        raise DataError("table has a header but no rows", path)

    cached: list[list[int]] = []

    def line_of(row: int) -> int:
        if not cached:
            cached.append(_data_lines(path, set()))
        return cached[0][row]

    return _normalise_table(df, mapping, path, line_of, options.skip_bad_lines)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _parser_error_line(exc: BaseException) -> int | None:
    m = re.search(r"line (\d+)", str(exc))
    return int(m.group(1)) if m else None


def _read_table_skipping(
    path: Path, sep: str, mapping: ColumnMapping, options: ReadOptions
) -> ReadResult:
    """Slow path: find rows with the wrong number of fields, then read without them."""
    bad: list[tuple[int, str]] = []
    n_fields: int | None = None
    bad_lines: set[int] = set()
    for number, text in _iter_lines(path):
        if text is None:
            bad.append((number, "line is not valid UTF-8"))
            bad_lines.add(number)
            continue
        if not text.strip():
            continue
        parts = next(csv.reader([text.rstrip("\r\n")], delimiter=sep))
        if n_fields is None:
            n_fields = len(parts)
        elif len(parts) != n_fields:
            bad.append((number, f"expected {n_fields} fields, found {len(parts)}"))
            bad_lines.add(number)
    wanted = set(mapping.as_dict().values())
    df = pd.read_csv(
        path,
        sep=sep,
        engine="c",
        dtype={c: str for c in wanted},
        compression="infer",
        skiprows=lambda i: (i + 1) in bad_lines,
        keep_default_na=False,
        na_values=[""],
    )
    lines = _data_lines(path, bad_lines)
    result = _normalise_table(df, mapping, path, lines.__getitem__, True)
    result.bad.extend(bad)
    return result


def _data_lines(path: Path, skip: set[int]) -> list[int]:
    """File line numbers of the data rows of a CSV file (after the header, no blank lines)."""
    lines: list[int] = []
    header_seen = False
    for number, text in _iter_lines(path):
        if number in skip or (text is not None and not text.strip()):
            continue
        if not header_seen:
            header_seen = True
            continue
        lines.append(number)
    return lines


def _normalise_table(
    df: pd.DataFrame,
    mapping: ColumnMapping,
    path: Path | None,
    line_of: Callable[[int], int] | None,
    skip: bool,
) -> ReadResult:
    """Map, type-check and convert the columns of a table.

    ``line_of`` maps a row position to its file line (CSV files; exact unless quoted fields
    span lines); ``None`` reports 0-based row positions instead. Without ``skip`` only the first
    bad row of each kind of problem is described, with the other rows that have it.
    """
    fields = mapping.as_dict()
    missing = [src for src in fields.values() if src not in df.columns]
    if missing:
        present = ", ".join(map(str, df.columns))
        raise DataError(f"missing column(s) {', '.join(missing)}; columns present: {present}", path)
    n = len(df)
    invalid = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    unit = "line" if line_of is not None else "row"

    def position(i: int) -> int:
        return line_of(i) if line_of is not None else i

    def flag(mask: np.ndarray, src: str, describe: Callable[[int], str]) -> None:
        rows = np.flatnonzero(mask & ~invalid)
        if skip:
            for i in rows:
                reasons[int(i)] = f"column {src!r}: {describe(int(i))}"
        elif len(rows):
            first = int(rows[0])
            others = [position(int(i)) for i in np.flatnonzero(mask) if i != first]
            reasons[first] = f"column {src!r}: {describe(first)}{_also_at(others, unit)}"
        invalid[:] |= mask

    out: dict[str, np.ndarray] = {}
    for target in ("user", "item"):
        src = fields[target]
        ids, null, unusable = _table_ids(df[src])
        flag(null, src, functools.partial(_missing_table_id, df[src]))
        flag(unusable, src, functools.partial(_unusable_id, df[src]))
        out[target] = ids
    if "rating" in fields:
        src = fields["rating"]
        values = pd.to_numeric(df[src], errors="coerce")
        ratings = values.to_numpy(dtype=np.float64, na_value=np.nan)
        flag(
            np.isnan(ratings),
            src,
            functools.partial(_expected, df[src], "a number"),
        )
        out["rating"] = ratings
    if "timestamp" in fields:
        src = fields["timestamp"]
        seconds, codes, numbers = _parse_times(df[src])
        for code in np.unique(codes[codes != _T_OK]):
            if code == _T_UNREADABLE:
                describe = functools.partial(_expected, df[src], "unix seconds or a date")
            elif code in (_T_DATE_AMONG_NUMBERS, _T_NUMBER_AMONG_DATES):
                describe = functools.partial(_mixed_time, df[src], int(code))
            else:
                describe = functools.partial(_describe_time, int(code), numbers)
            flag(codes == code, src, describe)
        out["timestamp"] = seconds
    bad = [(position(i), reason) for i, reason in sorted(reasons.items())]
    keep = ~invalid
    frame = pd.DataFrame({k: v[keep] for k, v in out.items()})
    frame = _canonical(frame) if len(frame) else _empty_like(frame)
    return ReadResult(frame, bad, unit=unit)


_SHOWN_ROWS = 5


def _also_at(positions: list[int], unit: str) -> str:
    """`` (also at rows 3, 7 and 2 more)`` for an error message; empty when there are none."""
    if not positions:
        return ""
    shown = ", ".join(map(str, positions[:_SHOWN_ROWS]))
    more = f" and {len(positions) - _SHOWN_ROWS} more" if len(positions) > _SHOWN_ROWS else ""
    plural = "s" if len(positions) > 1 else ""
    return f" (also at {unit}{plural} {shown}{more})"


def _expected(col: pd.Series, what: str, i: int) -> str:
    return f"expected {what}, got {_show(col.iloc[i])}"


def _mixed_time(col: pd.Series, code: int, i: int) -> str:
    rest, odd = ("unix seconds", "date") if code == _T_DATE_AMONG_NUMBERS else ("a date", "number")
    return (
        f"expected {rest} like the rest of the column, got the {odd} {_show(col.iloc[i])} "
        "(write every timestamp in one form)"
    )


def _describe_time(code: int, numbers: np.ndarray, i: int) -> str:
    return _time_message(code, numbers[i])


def _missing_table_id(col: pd.Series, i: int) -> str:
    return _missing_id(col.iloc[i])


def _unusable_id(col: pd.Series, i: int) -> str:
    value = col.iloc[i]
    if not math.isfinite(float(value)):
        return f"expected an id, got {_show(value)}"
    return _float_id_problem(value)


def _float_id_problem(value: Any) -> str:
    return (
        f"float id {_show(value)} is too large to be an exact integer "
        "(keep ids as integers or strings, not floats)"
    )


def _table_ids(col: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Id strings of a table column, its missing values, and its float values unusable as ids.

    Integer-valued floats are spelled as integers (``1.0`` -> ``'1'``): a float id column is
    what pandas makes of an integer column with a missing value. Non-integer floats keep their
    spelling (``'0.5'``); infinite floats, and integer floats of 2**53 or more (not exact), are
    unusable. Text that spells a missing value (``''``, ``'NaN'``, ``'null'``, ...) is missing.
    Text ids are returned as written; :func:`_finish` applies :func:`id_text`.
    """
    null = np.array(col.isna().to_numpy(), dtype=bool)  # a writable copy
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        filled = col.fillna("")
        null = null | _missing_texts(filled)
        return filled.to_numpy(dtype=object), null, np.zeros(len(col), dtype=bool)
    if pd.api.types.is_float_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        integral = finite & (np.floor(values) == values)
        exact = integral & (np.abs(values) < _EXACT_FLOAT)
        ids = col.astype(str).to_numpy(dtype=object)
        ids[exact] = values[exact].astype(np.int64).astype(str).astype(object)
        return ids, null, ~null & (~finite | (integral & ~exact))
    if col.dtype == object:
        ids = np.empty(len(col), dtype=object)
        unusable = np.zeros(len(col), dtype=bool)
        for i, value in enumerate(col.to_numpy(dtype=object)):
            if not null[i] and isinstance(value, str) and _is_missing_text(value):
                null[i] = True
            text = "" if null[i] else _object_id(value)
            unusable[i] = text is None
            ids[i] = "" if text is None else text
        return ids, null, unusable
    return col.astype(str).to_numpy(dtype=object), null, np.zeros(len(col), dtype=bool)


def _object_id(value: Any) -> str | None:
    """The id spelling of one value of an object column; None for a float unusable as an id."""
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number) or (number.is_integer() and abs(number) >= _EXACT_FLOAT):
            return None
        return str(int(number)) if number.is_integer() else str(value)
    return str(value)


def _empty_like(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"user": pd.Series([], dtype=str), "item": pd.Series([], dtype=str)})
    if "timestamp" in frame.columns:
        out["timestamp"] = np.array([], dtype=np.int64)
    if "rating" in frame.columns:
        out["rating"] = np.array([], dtype=np.float64)
    return out


def _parse_times(col: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unix seconds from a numeric or date column.

    Returns ``(seconds, codes, numbers)``: ``codes`` says what is wrong with each row
    (``_T_OK``: nothing; see :func:`_time_code`) and ``numbers`` holds the numeric values
    (for messages). Numbers are floored to whole seconds.
    """
    n = len(col)
    null = col.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(col):
        return _date_times(col, null)
    if pd.api.types.is_integer_dtype(col.dtype):
        return _integer_times(col, null)
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        numeric = pd.to_numeric(col, errors="coerce")
        unreadable = np.zeros(n, dtype=bool)
        date_among_numbers = unreadable
    else:
        text = col.astype(str).str.strip()
        null = null | _missing_texts(text)
        numeric = pd.to_numeric(text, errors="coerce")
        if not numeric.notna().any():  # no numeric value at all: a date column
            dates = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
            return _date_times(dates, null)
        unreadable = numeric.isna().to_numpy() & ~null
        if pd.api.types.is_integer_dtype(numeric.dtype):
            return _integer_times(numeric, null)
        if unreadable.any():  # dates among the numbers? the minority form is the mistake
            is_number = numeric.notna().to_numpy()
            dates = pd.to_datetime(
                text.where(~is_number & ~null), errors="coerce", format="mixed", utc=True
            )
            is_date = dates.notna().to_numpy()
            if is_date.sum() > is_number.sum():
                seconds, codes, _ = _date_times(dates, null | is_number)
                codes[is_number] = _T_NUMBER_AMONG_DATES
                return seconds, codes, numeric.to_numpy(dtype=np.float64, na_value=np.nan)
            date_among_numbers = is_date
        else:
            date_among_numbers = np.zeros(n, dtype=bool)
    values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    codes = np.full(n, _T_OK, dtype=np.int8)
    finite = np.isfinite(values)
    codes[np.isnan(values)] = _T_MISSING
    codes[unreadable] = _T_UNREADABLE
    codes[date_among_numbers] = _T_DATE_AMONG_NUMBERS
    codes[np.isinf(values)] = _T_NOT_FINITE
    codes[finite & (values < 0)] = _T_NEGATIVE
    codes[finite & (values >= 2.0**63)] = _T_TOO_LARGE
    ok = codes == _T_OK
    seconds = np.zeros(n, dtype=np.int64)
    seconds[ok] = np.floor(values[ok]).astype(np.int64)
    return seconds, codes, values


def _integer_times(col: pd.Series, null: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_parse_times` for an integer column: exact, not through float64."""
    unsigned = pd.api.types.is_unsigned_integer_dtype(col.dtype)
    values = col.to_numpy(dtype=np.uint64 if unsigned else np.int64, na_value=0)
    codes = np.full(len(col), _T_OK, dtype=np.int8)
    codes[null] = _T_MISSING
    if unsigned:
        codes[~null & (values > _INT64_MAX)] = _T_TOO_LARGE
    else:
        codes[~null & (values < 0)] = _T_NEGATIVE
    ok = codes == _T_OK
    seconds = np.zeros(len(col), dtype=np.int64)
    seconds[ok] = values[ok].astype(np.int64)
    return seconds, codes, values


def _date_times(dates: pd.Series, null: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_parse_times` for parsed dates (``NaT``: missing if ``null``, else unreadable)."""
    bad = dates.isna().to_numpy()
    codes = np.where(bad, np.where(null, _T_MISSING, _T_UNREADABLE), _T_OK).astype(np.int8)
    seconds = np.zeros(len(dates), dtype=np.int64)
    if (~bad).any():
        seconds[~bad] = _to_unix_seconds(dates[~bad])
    return seconds, codes, np.full(len(dates), np.nan)
