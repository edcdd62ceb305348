"""The datasets of the Rec-Denoiser paper: where their files live and how to prepare them.

Every dataset has local candidate files (relative to the data directory), tried first, and
official raw downloads, tried next. The data directory is, in order of precedence: an explicit
argument, the environment variable ``RECDENOISER_DATA_DIR``, or ``./data``.

Preprocessed files (``ml-1m/ml-1m.txt``, ``games/Video.txt``, ``beauty/Beauty.txt``, ...) are
the public versions used by SASRec / S3Rec; they are read as they are (``k_core=None``).
Raw downloads are turned into sequences the way SASRec does it: every rating or review is
implicit feedback (no rating threshold: ``min_rating=None`` everywhere, as in SASRec,
BERT4Rec and Rec-Denoiser) and users/items with fewer than 5 interactions are removed
(``k_core=5``; iterated to a fixed point here, which can remove slightly more than SASRec's
single pass). The Amazon Beauty and Toys raw sources are the official "5-core" review files,
which give exactly the S3Rec statistics; the ratings-only CSVs are accepted too.

Checksums: the sha256 of the local preprocessed files is known. For the raw downloads only the
MovieLens zip has a published checksum (an MD5, from GroupLens); for the others ``sha256`` is
``None``: the first download logs its sha256 and writes it next to the file (``FILE.sha256``)
so later runs can be compared.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from recdenoiser.errors import DataError
from recdenoiser.registry import Registry

logger = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "DatasetInfo",
    "LocalFile",
    "Located",
    "RawSource",
    "locate",
    "resolve_data_dir",
]

DATA_DIR_ENV = "RECDENOISER_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")

_SNAP = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"


@dataclass(frozen=True)
class LocalFile:
    """An already-preprocessed file, relative to the data directory."""

    path: str
    fmt: str
    sha256: str | None = None
    k_core: int | None = None
    min_rating: float | None = None


@dataclass(frozen=True)
class RawSource:
    """An official raw download.

    Attributes:
        url: where to download it from.
        filename: the downloaded file's name, stored under ``data_dir / folder``.
        fmt: the reader format of the file that is read (the member for archives).
        member: for zip archives, the member to extract (stored by its base name).
        sha256 / md5: known checksums of the downloaded file, or ``None``.
        k_core / min_rating: default preprocessing of this raw file.
    """

    url: str
    filename: str
    fmt: str
    member: str | None = None
    sha256: str | None = None
    md5: str | None = None
    k_core: int | None = 5
    min_rating: float | None = None

    @property
    def read_name(self) -> str:
        """Name of the file that is read once downloaded (and extracted)."""
        return Path(self.member).name if self.member else self.filename


@dataclass(frozen=True)
class DatasetInfo:
    """A known dataset: description, local files, raw downloads and defaults."""

    name: str
    description: str
    folder: str
    files: tuple[LocalFile, ...] = ()
    raw: tuple[RawSource, ...] = ()
    max_len: int = 50
    notes: str = ""


class Located(NamedTuple):
    """Result of :func:`locate`: the file, its reader format and preprocessing options."""

    path: Path
    fmt: str
    options: dict[str, Any]


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def _add(info: DatasetInfo) -> None:
    DATASETS.add(info.name, info)


_ML1M_RAW = RawSource(
    url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    filename="ml-1m.zip",
    member="ml-1m/ratings.dat",
    fmt="movielens",
    md5="c4d9eecfca2ab87c1945afe126590906",
)
_BEAUTY_RAW = (
    RawSource(
        url=_SNAP + "reviews_Beauty_5.json.gz",
        filename="reviews_Beauty_5.json.gz",
        fmt="amazon-json",
    ),
    RawSource(url=_SNAP + "ratings_Beauty.csv", filename="ratings_Beauty.csv", fmt="amazon-csv"),
)

_add(
    DatasetInfo(
        name="ml-1m",
        description="MovieLens-1M (SASRec preprocessing: all ratings as implicit feedback, 5-core)",
        folder="ml-1m",
        files=(
            LocalFile(
                "ml-1m/ml-1m.txt",
                "user-item",
                "b725f3acb3986fe3130bffd1e77a74d182a1f51799567a236dbd60270f95b0a2",
            ),
        ),
        raw=(_ML1M_RAW,),
        max_len=200,
        notes="6,040 users, 3,416 items, 999,611 interactions (SASRec file).",
    )
)
_add(
    DatasetInfo(
        name="beauty",
        description="Amazon Beauty 2014, 5-core (S3Rec/ICLRec preprocessing)",
        folder="beauty",
        files=(
            LocalFile(
                "beauty/Beauty.txt",
                "user-sequence",
                "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
            ),
        ),
        raw=_BEAUTY_RAW,
        notes="22,363 users, 12,101 items, 198,502 interactions.",
    )
)
_add(
    DatasetInfo(
        name="beauty-time",
        description="Amazon Beauty 2014, 5-core, with review times (same ids as 'beauty')",
        folder="beauty",
        files=(
            LocalFile(
                "beauty/beauty_time.txt",
                "user-item-time",
                "554272ef69ab5bc9002aebd51c0b87909a0f198238ab9f1284b8d10f7efedca4",
            ),
        ),
        raw=_BEAUTY_RAW,
        notes="Day-resolution timestamps; ties keep the order of Beauty.txt.",
    )
)
_add(
    DatasetInfo(
        name="toys",
        description="Amazon Toys and Games 2014, 5-core (S3Rec/ICLRec preprocessing)",
        folder="toys",
        files=(
            LocalFile(
                "toys/Toys_and_Games.txt",
                "user-sequence",
                "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
            ),
        ),
        raw=(
            RawSource(
                url=_SNAP + "reviews_Toys_and_Games_5.json.gz",
                filename="reviews_Toys_and_Games_5.json.gz",
                fmt="amazon-json",
            ),
            RawSource(
                url=_SNAP + "ratings_Toys_and_Games.csv",
                filename="ratings_Toys_and_Games.csv",
                fmt="amazon-csv",
            ),
        ),
        notes="19,412 users, 11,924 items, 167,597 interactions.",
    )
)
_add(
    DatasetInfo(
        name="games",
        description="Amazon Video Games 2014 (SASRec 'Games')",
        folder="games",
        files=(
            LocalFile(
                "games/Video.txt",
                "user-item",
                "b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651",
            ),
        ),
        raw=(
            RawSource(
                url=_SNAP + "ratings_Video_Games.csv",
                filename="ratings_Video_Games.csv",
                fmt="amazon-csv",
            ),
        ),
        notes="31,013 users, 23,715 items, 287,107 interactions (SASRec file).",
    )
)
_add(
    DatasetInfo(
        name="movies-tv",
        description="Amazon Movies and TV 2014 (ratings only), 5-core",
        folder="movies-tv",
        raw=(
            RawSource(
                url=_SNAP + "ratings_Movies_and_TV.csv",
                filename="ratings_Movies_and_TV.csv",
                fmt="amazon-csv",
            ),
        ),
    )
)
_add(
    DatasetInfo(
        name="steam",
        description="Steam reviews as published for SASRec, 5-core",
        folder="steam",
        raw=(
            RawSource(
                url="http://cseweb.ucsd.edu/~wckang/steam_reviews.json.gz",
                filename="steam_reviews.json.gz",
                fmt="steam",
            ),
        ),
    )
)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data directory: ``data_dir`` > ``$RECDENOISER_DATA_DIR`` > ``./data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_DIR


def _data_dir_origin(data_dir: str | Path | None) -> str:
    if data_dir is not None:
        return "given explicitly"
    if os.environ.get(DATA_DIR_ENV):
        return f"from ${DATA_DIR_ENV}"
    return f"the default; ${DATA_DIR_ENV} is not set"


def raw_path(info: DatasetInfo, raw: RawSource, data_dir: str | Path | None = None) -> Path:
    """Where the raw download of ``raw`` is read from (after extraction for archives)."""
    return resolve_data_dir(data_dir) / info.folder / raw.read_name


def locate(name: str, data_dir: str | Path | None = None) -> Located:
    """Find the local file of a registered dataset.

    Preprocessed files are tried first, then previously downloaded raw files.

    Args:
        name: a name in :data:`DATASETS`.
        data_dir: the data directory (see :func:`resolve_data_dir`).

    Returns:
        ``(path, fmt, options)`` where ``options`` holds the default ``k_core`` and
        ``min_rating`` for that file, its known ``sha256`` (or None) and ``kind``
        (``"preprocessed"`` or ``"raw"``).

    Raises:
        ConfigError: unknown dataset name (the message lists the known ones).
        DataError: no file found; the message lists the paths tried and how to get them.
    """
    info = DATASETS.get(name)
    root = resolve_data_dir(data_dir)
    tried: list[str] = []
    for local in info.files:
        path = root / local.path
        if path.is_file():
            return Located(
                path,
                local.fmt,
                {
                    "k_core": local.k_core,
                    "min_rating": local.min_rating,
                    "sha256": local.sha256,
                    "kind": "preprocessed",
                },
            )
        tried.append(f"{path} (preprocessed, {local.fmt})")
    for raw in info.raw:
        path = raw_path(info, raw, root)
        if path.is_file():
            return Located(
                path,
                raw.fmt,
                {
                    "k_core": raw.k_core,
                    "min_rating": raw.min_rating,
                    "sha256": raw.sha256 if raw.member is None else None,
                    "kind": "raw",
                },
            )
        tried.append(f"{path} (raw download, {raw.fmt})")
    how = (
        f"run `recdenoiser prepare {name} --download` (downloads {info.raw[0].url})"
        if info.raw
        else "copy the files there"
    )
    raise DataError(
        f"dataset {name!r} not found in data directory {root} ({_data_dir_origin(data_dir)}); "
        f"looked for: {'; '.join(tried)}. To get it: {how}, or set {DATA_DIR_ENV} "
        "(or pass the data directory) to the folder that holds the files."
    )
