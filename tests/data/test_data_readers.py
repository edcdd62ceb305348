"""Readers: every format on a fixture, and every kind of bad input with file and line."""

from __future__ import annotations

import gzip
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recdenoiser.data import ColumnMapping, from_dataframe, read_interactions
from recdenoiser.data.readers import READERS
from recdenoiser.errors import ConfigError, DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def gzip_copy(src: Path, dest: Path) -> Path:
    with src.open("rb") as fin, gzip.open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return dest


# ------------------------------------------------------------------------------ good input
def test_registered_formats() -> None:
    assert set(READERS.names()) == {
        "user-item",
        "user-sequence",
        "user-item-time",
        "movielens",
        "amazon-json",
        "amazon-csv",
        "steam",
        "table",
    }


def test_user_item_with_trailing_blank_lines() -> None:
    df = read_interactions(FIXTURES / "user_item.txt", "user-item")
    assert list(df.columns) == ["user", "item"]
    assert df["user"].tolist() == ["1", "1", "2", "1", "2"]
    assert df["item"].tolist() == ["10", "11", "10", "12", "13"]
    assert df.attrs["skipped_lines"] == 0
    assert df.attrs["duplicate_rows"] == 0
    assert df.attrs["format"] == "user-item"


def test_user_sequence() -> None:
    df = read_interactions(FIXTURES / "user_sequence.txt", "user-sequence")
    assert df["user"].tolist() == ["u1"] * 3 + ["u2"] * 2 + ["u3"]
    assert df["item"].tolist() == ["10", "11", "12", "11", "13", "12"]


def test_user_item_time() -> None:
    df = read_interactions(FIXTURES / "user_item_time.txt", "user-item-time")
    assert df["timestamp"].dtype == np.int64
    assert df["timestamp"].tolist() == [1300000000, 1200000000, 1250000000, 1200000000]


def test_movielens() -> None:
    df = read_interactions(FIXTURES / "ratings.dat", "movielens")
    assert list(df.columns) == ["user", "item", "timestamp", "rating"]
    assert df["item"].tolist() == ["1193", "661", "1193", "3408"]
    assert df["rating"].dtype == np.float64
    assert df["rating"].tolist() == [5.0, 3.0, 4.0, 2.0]
    assert df["timestamp"].iloc[0] == 978300760


@pytest.mark.parametrize("gz", [False, True])
def test_amazon_json(tmp_path: Path, gz: bool) -> None:
    path = FIXTURES / "amazon.json"
    if gz:
        path = gzip_copy(path, tmp_path / "reviews.json.gz")
    df = read_interactions(path, "amazon-json")
    assert df["user"].tolist() == ["A2SUAM1J3GNN3B", "A18C9SNLZWVBIE", "A2SUAM1J3GNN3B"]
    assert df["item"].tolist() == ["0000013714", "0000013714", "B00004R8XY"]
    assert df["timestamp"].tolist() == [1252800000, 1209600000, 1200000000]
    assert df["rating"].tolist() == [5.0, 4.0, 2.0]


def test_amazon_loose_json_python_dicts(tmp_path: Path) -> None:
    path = gzip_copy(FIXTURES / "amazon_loose.json", tmp_path / "loose.json.gz")
    df = read_interactions(path, "amazon-json")
    assert df["user"].tolist() == ["A2SUAM1J3GNN3B", "A18C9SNLZWVBIE"]
    assert df["rating"].tolist() == [5.0, 4.0]


def test_amazon_json_without_overall_has_no_rating(tmp_path: Path) -> None:
    path = write(tmp_path, "r.json", '{"reviewerID": "a", "asin": "x", "unixReviewTime": 5}\n')
    df = read_interactions(path, "amazon-json")
    assert "rating" not in df.columns


def test_amazon_csv() -> None:
    df = read_interactions(FIXTURES / "ratings_amazon.csv", "amazon-csv")
    assert df["item"].tolist() == ["0132793040", "0321732944", "0439886341"]  # zeros kept
    assert df["rating"].tolist() == [5.0, 5.0, 1.0]
    assert df["timestamp"].tolist() == [1365811200, 1341100800, 1367193600]


def test_steam_gz(tmp_path: Path) -> None:
    path = gzip_copy(FIXTURES / "steam.json", tmp_path / "steam_reviews.json.gz")
    df = read_interactions(path, "steam")
    assert df["user"].tolist() == ["Chaos Syren", "O'Brien", "Chaos Syren"]
    assert df["item"].tolist() == ["725280", "328100", "35140"]
    expected = [pd.Timestamp(d).timestamp() for d in ("2017-12-17", "2017-10-31", "2018-01-04")]
    assert df["timestamp"].tolist() == [int(x) for x in expected]


def test_table_csv_with_dates() -> None:
    mapping = ColumnMapping(user="uid", item="iid", timestamp="ts", rating="score")
    df = read_interactions(FIXTURES / "table.csv", "table", columns=mapping)
    assert list(df.columns) == ["user", "item", "timestamp", "rating"]
    assert df["timestamp"].tolist() == [1577923200, 1577836800, 1577786400]
    assert df["rating"].tolist() == [4.5, 3.0, 5.0]


def test_table_tsv_numeric_times_and_dict_mapping() -> None:
    df = read_interactions(
        FIXTURES / "table.tsv", "table", columns={"user": "uid", "item": "iid", "timestamp": "ts"}
    )
    assert df["timestamp"].tolist() == [1600000000, 1500000000]
    assert "rating" not in df.columns


def test_table_parquet(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {"u": [1, 2, 1], "i": ["a", "b", "c"], "t": pd.to_datetime(["2020-01-01"] * 3)}
    ).to_parquet(path)
    df = read_interactions(path, "table", columns=ColumnMapping(user="u", item="i", timestamp="t"))
    assert df["user"].tolist() == ["1", "2", "1"]
    assert df["timestamp"].tolist() == [1577836800] * 3


def test_from_dataframe() -> None:
    raw = pd.DataFrame({"who": [3, 4], "what": ["x", "y"], "when": [10, 20], "r": [1, 2]})
    df = from_dataframe(raw, ColumnMapping(user="who", item="what", timestamp="when", rating="r"))
    assert df["user"].tolist() == ["3", "4"]
    assert df["timestamp"].dtype == np.int64
    assert df["rating"].dtype == np.float64


def test_table_needs_mapping() -> None:
    with pytest.raises(ConfigError, match="column mapping"):
        read_interactions(FIXTURES / "table.csv", "table")


def test_columns_rejected_for_other_formats() -> None:
    with pytest.raises(ConfigError, match="only used by the 'table'"):
        read_interactions(
            FIXTURES / "user_item.txt", "user-item", columns={"user": "a", "item": "b"}
        )


def test_unknown_format_lists_choices() -> None:
    with pytest.raises(ConfigError, match="choose one of: amazon-csv, amazon-json"):
        read_interactions(FIXTURES / "user_item.txt", "csv-ish")


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("fmt", "text", "line", "match"),
    [
        ("user-item", "1 2\n1 3\n1 4 5\n2 3\n", 3, "expected 2 fields"),
        ("user-item", "1 2\n1\n2 3\n", 2, "expected 2 fields"),
        ("user-item", "1 2\n1 abc\n", 2, "expected an integer, got 'abc'"),
        ("user-item", "user item\n1 2\n", 1, "expected an integer, got 'user'"),
        ("user-item", "1 2\n99999999999999999999999 3\n", 2, "64-bit range"),
        ("user-item-time", "1 2 3\n1 2 x\n", 2, "expected an integer, got 'x'"),
        ("user-item-time", "1 2 3\n1 2 3.5\n", 2, "expected an integer"),
        ("user-sequence", "u 1 2\nlonely\nv 3\n", 2, "at least one item"),
        ("movielens", "1::2::5::9\n1::3::x::9\n", 2, "expected a number, got 'x'"),
        ("movielens", "1::2::5::9\n\n1::3::5\n", 3, "expected 4 fields"),
        ("amazon-csv", "a,b,5.0,10\nc,d,5.0\n", 2, "expected 4 fields"),
        ("amazon-csv", "a,b,5.0,10\nc,d,5.0,yesterday\n", 2, "expected an integer"),
        (
            "amazon-json",
            '{"reviewerID": "a", "asin": "b", "unixReviewTime": 1}\n{oops\n',
            2,
            "JSON",
        ),
        ("amazon-json", '{"reviewerID": "a", "asin": "b"}\n', 1, "missing key.*unixReviewTime"),
        ("amazon-json", "[1, 2]\n", 1, "expected an object"),
        (
            "amazon-json",
            '{"reviewerID": "a", "asin": "b", "unixReviewTime": "soon"}\n',
            1,
            "unixReviewTime: expected an integer",
        ),
        ("steam", "{'username': 'a', 'product_id': '1', 'date': '2017-13-45'}\n", 1, "YYYY-MM-DD"),
        ("steam", "{'username': 'a', 'product_id': '1'}\n", 1, "missing key.*date"),
    ],
)
def test_malformed_line_reports_file_and_line(
    tmp_path: Path, fmt: str, text: str, line: int, match: str
) -> None:
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(DataError, match=match) as info:
        read_interactions(path, fmt)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert info.value.line == line


def test_table_bad_value_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "u,i,t\na,x,10\nb,y,oops\nc,z,30\n")
    with pytest.raises(DataError, match="column 't': expected unix seconds") as info:
        read_interactions(path, "table", columns={"user": "u", "item": "i", "timestamp": "t"})
    assert str(info.value).startswith(f"{path}:3: ")


@pytest.mark.parametrize(
    ("rows", "line", "match"),
    [
        # mostly dates: the number is the odd one out, not every date
        (
            ["2020-01-01", "2020-01-02", "2020-01-03", "1600000000"],
            5,
            "expected a date like the rest of the column, got the number '1600000000'",
        ),
        # mostly numbers: the date is the odd one out
        (
            ["1600000000", "2020-01-02", "1600000002", "1600000003"],
            3,
            "expected unix seconds like the rest of the column, got the date '2020-01-02'",
        ),
    ],
)
def test_table_mixed_dates_and_numbers_blame_the_minority(
    tmp_path: Path, rows: list[str], line: int, match: str
) -> None:
    body = "".join(f"a,x{n},{t}\n" for n, t in enumerate(rows))
    path = write(tmp_path, "t.csv", "u,i,t\n" + body)
    mapping = {"user": "u", "item": "i", "timestamp": "t"}
    with pytest.raises(DataError, match=f"column 't': {match}") as info:
        read_interactions(path, "table", columns=mapping)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert "also at" not in str(info.value)  # the other rows are fine
    with pytest.warns(UserWarning, match=rf"skipped 1 malformed lines .*first at line {line}"):
        df = read_interactions(path, "table", columns=mapping, skip_bad_lines=True)
    assert len(df) == 3


def test_table_wrong_field_count(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "u,i\na,x\nb,y,extra\n")
    with pytest.raises(DataError, match="malformed table") as info:
        read_interactions(path, "table", columns={"user": "u", "item": "i"})
    assert info.value.line == 3


def test_table_missing_columns_named(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"missing column\(s\) user_id, stamp; columns present: uid"
    ):
        read_interactions(
            FIXTURES / "table.csv",
            "table",
            columns={"user": "user_id", "item": "iid", "timestamp": "stamp"},
        )


def test_from_dataframe_missing_column_and_bad_row() -> None:
    with pytest.raises(DataError, match=r"missing column.*present: a, b"):
        from_dataframe(pd.DataFrame({"a": [1], "b": [2]}), {"user": "a", "item": "c"})
    raw = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "r": [1.0, "bad"]})
    with pytest.raises(DataError, match="row 1: column 'r': expected a number"):
        from_dataframe(raw, {"user": "a", "item": "b", "rating": "r"})


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "empty.txt", text)
    with pytest.raises(DataError, match=r"empty|no interactions") as info:
        read_interactions(path, "user-item")
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found") as info:
        read_interactions(tmp_path / "nope.txt", "user-item")
    assert str(tmp_path / "nope.txt") in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes(b"a 1 2\nb \xff\xfe 3\n")
    with pytest.raises(DataError, match="not valid UTF-8") as info:
        read_interactions(path, "user-sequence")
    assert info.value.line == 2


# ---------------------------------------------------------------------- skipping and dups
def test_skip_bad_lines_counts_and_warns_once(tmp_path: Path) -> None:
    text = "1 2\n1 3\n1 x\n2 3\n2 4 5\n\n3\n3 4\n"
    path = write(tmp_path, "bad.txt", text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = read_interactions(path, "user-item", skip_bad_lines=True)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert messages[0].startswith(f"skipped 3 malformed lines in {path} (first at line 3")
    assert df.attrs["skipped_lines"] == 3
    assert df["item"].tolist() == ["2", "3", "3", "4"]


def test_skip_bad_lines_json(tmp_path: Path) -> None:
    good = '{"reviewerID": "a", "asin": "b", "unixReviewTime": 1}\n'
    path = write(tmp_path, "r.json", good + "garbage\n" + good.replace('"b"', '"c"') + "{'x': 1}\n")
    with pytest.warns(UserWarning, match="skipped 2 malformed lines .*first at line 2"):
        df = read_interactions(path, "amazon-json", skip_bad_lines=True)
    assert df["item"].tolist() == ["b", "c"]


def test_skip_bad_lines_all_bad(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.txt", "a b\nc d\n")
    with pytest.raises(DataError, match="all 2 lines are malformed"):
        read_interactions(path, "user-item", skip_bad_lines=True)


def test_skip_bad_table_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "u,i,t\na,x,10\nb,y,11,12\nc,z,\nd,w,13\n")
    with pytest.warns(UserWarning, match="skipped 2 malformed lines"):
        df = read_interactions(
            path, "table", columns={"user": "u", "item": "i", "timestamp": "t"}, skip_bad_lines=True
        )
    assert df["user"].tolist() == ["a", "d"]
    assert df.attrs["skipped_lines"] == 2


def test_duplicates_counted_and_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", "1 2 5\n1 2 5\n1 2 6\n1 2 5\n")
    with pytest.warns(UserWarning, match="2 duplicate rows"):
        df = read_interactions(path, "user-item-time")
    assert len(df) == 4
    assert df.attrs["duplicate_rows"] == 2


def test_large_file_uses_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recdenoiser.data.readers as readers

    def no_scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("the line-by-line scan must not run on a well-formed file")

    monkeypatch.setattr(readers, "_scan_fixed", no_scan)
    n = 200_000
    users = np.repeat(np.arange(1, 2001), n // 2000)
    items = np.tile(np.arange(1, n // 2000 + 1), 2000)
    path = tmp_path / "big.txt"
    np.savetxt(path, np.stack([users, items], axis=1), fmt="%d")
    start = time.perf_counter()
    df = read_interactions(path, "user-item")
    elapsed = time.perf_counter() - start
    assert len(df) == n
    assert df["user"].iloc[-1] == "2000"
    assert elapsed < 5.0  # ~0.1 s on one core; generous for shared CI machines


# ------------------------------------------------------------------ ids from float columns
def test_from_dataframe_missing_ids_name_column_and_rows() -> None:
    raw = pd.DataFrame({"who": [1.0, np.nan, 2.0, None, np.nan], "what": [10, 11, 12, 13, 14]})
    with pytest.raises(DataError, match=r"row 1: column 'who': missing id \(also at rows 3, 4\)"):
        from_dataframe(raw, {"user": "who", "item": "what"})


def test_from_dataframe_missing_ids_skipped_and_counted() -> None:
    raw = pd.DataFrame({"who": [1.0, np.nan, 2.0], "what": [10.0, 11.0, None]})
    with pytest.warns(UserWarning, match=r"skipped 2 malformed rows .*first at row 1: .*'who'"):
        df = from_dataframe(raw, {"user": "who", "item": "what"}, skip_bad_lines=True)
    assert df["user"].tolist() == ["1"]
    assert df["item"].tolist() == ["10"]
    assert df.attrs["skipped_lines"] == 2


def test_from_dataframe_integer_valued_float_ids_keep_integer_spelling(tmp_path: Path) -> None:
    """A float column (e.g. an int column that had a NaN) gives the ids of the raw file."""
    path = write(tmp_path, "ui.txt", "1 10\n2 11\n1 12\n")
    from_file = read_interactions(path, "user-item")
    floats = pd.DataFrame({"u": [1.0, 2.0, 1.0], "i": np.array([10, 11, 12], dtype=np.float32)})
    df = from_dataframe(floats, {"user": "u", "item": "i"})
    assert df["user"].tolist() == from_file["user"].tolist() == ["1", "2", "1"]
    assert df["item"].tolist() == from_file["item"].tolist() == ["10", "11", "12"]
    mixed = pd.DataFrame({"u": pd.Series([1, 2.0, "x"], dtype=object), "i": [0.5, -0.0, 3.0]})
    df = from_dataframe(mixed, {"user": "u", "item": "i"})
    assert df["user"].tolist() == ["1", "2", "x"]
    assert df["item"].tolist() == ["0.5", "0", "3"]  # non-integer ids are kept as written


def test_from_dataframe_float_ids_that_are_not_exact() -> None:
    raw = pd.DataFrame({"u": [1.0, 2.0**60, np.inf], "i": [1, 2, 3]})
    with pytest.raises(DataError, match=r"row 1: column 'u': .*too large to be an exact") as info:
        from_dataframe(raw, {"user": "u", "item": "i"})
    assert "row 2" not in str(info.value).split("(")[0]
    with pytest.warns(UserWarning, match="skipped 2 malformed rows"):
        df = from_dataframe(raw, {"user": "u", "item": "i"}, skip_bad_lines=True)
    assert df["user"].tolist() == ["1"]


def test_table_parquet_float_ids(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"u": [1.0, np.nan, 3.0], "i": [7.0, 8.0, 9.0]}).to_parquet(path)
    mapping = {"user": "u", "item": "i"}
    with pytest.raises(DataError, match=r"t\.parquet: row 1: column 'u': missing id"):
        read_interactions(path, "table", columns=mapping)
    with pytest.warns(UserWarning, match="skipped 1 malformed rows"):
        df = read_interactions(path, "table", columns=mapping, skip_bad_lines=True)
    assert df["user"].tolist() == ["1", "3"]
    assert df["item"].tolist() == ["7", "9"]


def test_amazon_json_nan_id(tmp_path: Path) -> None:
    path = write(tmp_path, "r.json", '{"reviewerID": NaN, "asin": "x", "unixReviewTime": 5}\n')
    with pytest.raises(DataError, match="reviewerID: expected an id, got nan") as info:
        read_interactions(path, "amazon-json")
    assert info.value.line == 1


# ------------------------------------------------------------------------------ timestamps
BAD_TIMES = [
    (np.nan, "missing timestamp"),
    (np.inf, "timestamp is not finite: inf"),
    (-1.0, "negative timestamp -1"),
    (1e30, "timestamp 1e\\+30 is too large for 64-bit"),
]


@pytest.mark.parametrize(("value", "match"), BAD_TIMES)
def test_from_dataframe_bad_timestamps(value: float, match: str) -> None:
    raw = pd.DataFrame({"u": ["a", "b", "c"], "i": ["x", "y", "z"], "t": [978300760.0, value, 5.0]})
    mapping = {"user": "u", "item": "i", "timestamp": "t"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from a cast either
        with pytest.raises(DataError, match=f"row 1: column 't': {match}"):
            from_dataframe(raw, mapping)
        with pytest.raises(UserWarning, match="skipped 1 malformed rows"):
            from_dataframe(raw, mapping, skip_bad_lines=True)
    with pytest.warns(UserWarning, match="skipped 1 malformed rows"):
        df = from_dataframe(raw, mapping, skip_bad_lines=True)
    assert df["timestamp"].tolist() == [978300760, 5]


def test_from_dataframe_valid_float_and_integer_timestamps() -> None:
    raw = pd.DataFrame({"u": ["a", "b"], "i": ["x", "y"], "t": [978300760.0, 0.0]})
    df = from_dataframe(raw, {"user": "u", "item": "i", "timestamp": "t"})
    assert df["timestamp"].dtype == np.int64
    assert df["timestamp"].tolist() == [978300760, 0]
    big = 2**62 + 1  # exact: integer columns are not rounded through float64
    raw = pd.DataFrame({"u": ["a", "b"], "i": ["x", "y"], "t": np.array([big, 7], dtype=np.int64)})
    assert from_dataframe(raw, {"user": "u", "item": "i", "timestamp": "t"})[
        "timestamp"
    ].tolist() == [big, 7]
    raw["t"] = np.array([2**63, 7], dtype=np.uint64)
    with pytest.raises(DataError, match="row 0: column 't': timestamp 9223372036854775808 is too"):
        from_dataframe(raw, {"user": "u", "item": "i", "timestamp": "t"})
    raw["t"] = pd.array([5, None], dtype="Int64")
    with pytest.raises(DataError, match="row 1: column 't': missing timestamp"):
        from_dataframe(raw, {"user": "u", "item": "i", "timestamp": "t"})


def test_dates_before_1970_are_kept() -> None:
    raw = pd.DataFrame({"u": ["a"], "i": ["x"], "t": ["1969-12-31"]})
    df = from_dataframe(raw, {"user": "u", "item": "i", "timestamp": "t"})
    assert df["timestamp"].tolist() == [-86400]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a,x,-5\n", "negative timestamp -5"),
        ("a,x,1e30\n", "timestamp 1e\\+30 is too large for 64-bit"),
        ("a,x,99999999999999999999\n", "timestamp .* is too large for 64-bit"),
        ("a,x,inf\n", "timestamp is not finite"),
        ("a,x,nan\n", "missing timestamp"),
    ],
)
def test_table_bad_timestamps_name_file_line_column(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, "t.csv", "u,i,t\nb,y,978300760.0\n" + text)
    mapping = {"user": "u", "item": "i", "timestamp": "t"}
    with pytest.raises(DataError, match=f"column 't': {match}") as info:
        read_interactions(path, "table", columns=mapping)
    assert str(info.value).startswith(f"{path}:3: ")
    with pytest.warns(UserWarning, match=r"skipped 1 malformed lines .*first at line 3"):
        df = read_interactions(path, "table", columns=mapping, skip_bad_lines=True)
    assert df["timestamp"].tolist() == [978300760]


def test_table_parquet_bad_timestamp_names_row(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"u": ["a", "b"], "i": ["x", "y"], "t": [1.0, np.nan]}).to_parquet(path)
    with pytest.raises(DataError, match=r"row 1: column 't': missing timestamp"):
        read_interactions(path, "table", columns={"user": "u", "item": "i", "timestamp": "t"})


@pytest.mark.parametrize(
    ("fmt", "good", "bad", "match"),
    [
        ("user-item-time", "1 2 978300760\n", "1 3 -1\n", "unix_time: negative timestamp -1"),
        ("user-item-time", "1 2 5\n", "1 3 nan\n", "unix_time: missing timestamp"),
        ("user-item-time", "1 2 5\n", "1 3 inf\n", "unix_time: timestamp is not finite"),
        ("user-item-time", "1 2 5\n", "1 3 1e30\n", "unix_time: timestamp .* too large"),
        ("user-item-time", "1 2 5\n", f"1 3 {2**63}\n", "unix_time: timestamp .* too large"),
        ("movielens", "1::2::5::9\n", "1::3::4::-9\n", "Timestamp: negative timestamp -9"),
        ("amazon-csv", "a,b,5.0,10\n", "c,d,5.0,-10\n", "timestamp: negative timestamp -10"),
        (
            "amazon-json",
            '{"reviewerID": "a", "asin": "b", "unixReviewTime": 1}\n',
            '{"reviewerID": "a", "asin": "c", "unixReviewTime": -1}\n',
            "unixReviewTime: negative timestamp -1",
        ),
        (
            "amazon-json",
            '{"reviewerID": "a", "asin": "b", "unixReviewTime": 1}\n',
            '{"reviewerID": "a", "asin": "c", "unixReviewTime": 1e30}\n',
            "unixReviewTime: timestamp .* too large",
        ),
        (
            "amazon-json",
            '{"reviewerID": "a", "asin": "b", "unixReviewTime": 1}\n',
            '{"reviewerID": "a", "asin": "c", "unixReviewTime": Infinity}\n',
            "unixReviewTime: timestamp is not finite",
        ),
    ],
)
def test_text_formats_reject_bad_timestamps(
    tmp_path: Path, fmt: str, good: str, bad: str, match: str
) -> None:
    first, last = good, good.replace("1", "7", 1)  # distinct rows: no duplicate warning
    path = write(tmp_path, "f.txt", first + bad + last)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the error only: no RuntimeWarning of a failed cast
        with pytest.raises(DataError, match=match) as info:
            read_interactions(path, fmt)
    assert info.value.line == 2
    with pytest.warns(UserWarning, match=r"skipped 1 malformed lines .*first at line 2"):
        df = read_interactions(path, fmt, skip_bad_lines=True)
    assert len(df) == 2 and (df["timestamp"] >= 0).all()


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("user-item-time", "1 2 978300760.0\n1 3 978300761\n"),
        ("movielens", "1::2::5::978300760.0\n1::3::4::978300761\n"),
        ("amazon-csv", "a,b,5.0,978300760.0\na,c,4.0,978300761\n"),
        (
            "amazon-json",
            '{"reviewerID": "a", "asin": "b", "unixReviewTime": 978300760.0}\n'
            '{"reviewerID": "a", "asin": "c", "unixReviewTime": "978300761"}\n',
        ),
    ],
)
def test_integer_valued_float_timestamps_are_read(tmp_path: Path, fmt: str, text: str) -> None:
    df = read_interactions(write(tmp_path, "f.txt", text), fmt)
    assert df["timestamp"].dtype == np.int64
    assert df["timestamp"].tolist() == [978300760, 978300761]


def test_valid_times_use_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recdenoiser.data.readers as readers

    def no_scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("the line-by-line scan must not run on a well-formed file")

    monkeypatch.setattr(readers, "_scan_fixed", no_scan)
    lines = [
        f"{u}::{i}::4::{978300760 + u * 100 + i}{'.0' if i % 2 else ''}\n"
        for u in range(50)
        for i in range(1, 41)
    ]
    path = write(tmp_path, "ratings.dat", "".join(lines))
    df = read_interactions(path, "movielens")
    assert df["timestamp"].dtype == np.int64
    assert df["timestamp"].iloc[-1] == 978300760 + 49 * 100 + 40


# ------------------------------------------------------------------- missing-id spellings
MISSING_SPELLINGS = ["NaN", "nan", "NA", "null", "None", "N/A"]


@pytest.mark.parametrize("spelling", MISSING_SPELLINGS)
def test_table_missing_id_spellings_are_missing_ids(tmp_path: Path, spelling: str) -> None:
    path = write(tmp_path, "t.csv", f"u,i\na,x\n{spelling},y\nb,{spelling}\nc,z\n")
    mapping = {"user": "u", "item": "i"}
    with pytest.raises(DataError, match="column 'u': missing id") as info:
        read_interactions(path, "table", columns=mapping)
    assert str(info.value).startswith(f"{path}:3: ")
    with pytest.warns(UserWarning, match=r"skipped 2 malformed lines .*first at line 3"):
        df = read_interactions(path, "table", columns=mapping, skip_bad_lines=True)
    assert df["user"].tolist() == ["a", "c"]
    assert df.attrs["skipped_lines"] == 2


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("user-item", "1 2\nNaN 3\n2 4\n"),
        ("user-item", "1 2\n1 nan\n2 4\n"),
        ("user-item-time", "1 2 5\n1 null 6\n2 4 7\n"),
        ("movielens", "1::2::5::9\nNA::3::4::9\n2::4::3::9\n"),
        ("amazon-csv", "a,b,5.0,10\nc,None,5.0,10\nd,e,5.0,10\n"),
        ("amazon-csv", "a,b,5.0,10\nN/A,c,5.0,10\nd,e,5.0,10\n"),
        ("amazon-csv", "a,b,5.0,10\n,c,5.0,10\nd,e,5.0,10\n"),  # an empty cell: the same
        ("user-sequence", "u1 1 2\nu2 3 NaN\nu3 4\n"),
        ("user-sequence", "u1 1 2\nnull 3 4\nu3 4\n"),
    ],
)
def test_text_formats_missing_id_spellings(tmp_path: Path, fmt: str, text: str) -> None:
    path = write(tmp_path, "f.txt", text)
    with pytest.raises(DataError, match="missing id") as info:
        read_interactions(path, fmt)
    assert str(info.value).startswith(f"{path}:2: ")
    with pytest.warns(UserWarning, match=r"skipped 1 malformed lines .*first at line 2"):
        df = read_interactions(path, fmt, skip_bad_lines=True)
    assert df.attrs["skipped_lines"] == 1
    missing = {s.lower() for s in MISSING_SPELLINGS} | {""}
    assert not {v.lower() for v in [*df["user"], *df["item"]]} & missing


def test_from_dataframe_text_missing_ids() -> None:
    """``astype(str)`` of a float column with NaN gives 'nan': a missing id, not an id."""
    raw = pd.DataFrame({"u": ["a", "nan", "None", "b"], "i": ["x", "y", "z", "w"]})
    with pytest.raises(DataError, match=r"row 1: column 'u': missing id.*\(also at row 2\)"):
        from_dataframe(raw, {"user": "u", "item": "i"})


# ----------------------------------------------------------- one spelling rule for ids
def test_integer_valued_decimal_ids_are_the_same_id_in_every_reader(tmp_path: Path) -> None:
    """``1.0``/``42.000`` are the integer ids ``'1'``/``'42'`` everywhere; ``001`` stays."""
    table = read_interactions(
        write(tmp_path, "t.csv", "u,i\n1,10\n1.0,11.00\n001,42.000\n-3.0,0.5\n"),
        "table",
        columns={"user": "u", "item": "i"},
    )
    assert table["user"].tolist() == ["1", "1", "001", "-3"]
    assert table["item"].tolist() == ["10", "11", "42", "0.5"]
    parquet = tmp_path / "t.parquet"
    pd.DataFrame({"u": [1.0, 1.0, 2.0], "i": ["10", "11.0", "x.0"]}).to_parquet(parquet)
    df = read_interactions(parquet, "table", columns={"user": "u", "item": "i"})
    assert df["user"].tolist() == ["1", "1", "2"]
    assert df["item"].tolist() == ["10", "11", "x.0"]
    user_item = read_interactions(
        write(tmp_path, "ui.txt", "1 10\n1.0 11.0\n001 42.000\n"), "user-item"
    )
    assert user_item["user"].tolist() == ["1", "1", "001"]
    assert user_item["item"].tolist() == ["10", "11", "42"]
    amazon_csv = read_interactions(
        write(tmp_path, "a.csv", "1.0,10.000,5.0,1\n1,B01.0,4.0,2\n"), "amazon-csv"
    )
    assert amazon_csv["user"].tolist() == ["1", "1"]
    assert amazon_csv["item"].tolist() == ["10", "B01.0"]
    amazon_json = read_interactions(
        write(
            tmp_path,
            "r.json",
            '{"reviewerID": "1.0", "asin": 10.0, "unixReviewTime": 1}\n'
            '{"reviewerID": 1, "asin": "0010", "unixReviewTime": 2}\n',
        ),
        "amazon-json",
    )
    assert amazon_json["user"].tolist() == ["1", "1"]
    assert amazon_json["item"].tolist() == ["10", "0010"]
    steam = read_interactions(
        write(
            tmp_path,
            "s.json",
            "{'username': '7.0', 'product_id': '35140.0', 'date': '2018-01-04'}\n",
        ),
        "steam",
    )
    assert (steam["user"].tolist(), steam["item"].tolist()) == (["7"], ["35140"])
    seq = read_interactions(write(tmp_path, "s.txt", "u1 1.0 2\nu2 2.00\n"), "user-sequence")
    assert seq["item"].tolist() == ["1", "2", "2"]


def test_table_mixing_1_and_1_0_is_one_user(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "u,i,t\n1,a,1\n1.0,b,2\n2,a,3\n")
    df = read_interactions(path, "table", columns={"user": "u", "item": "i", "timestamp": "t"})
    assert df["user"].tolist() == ["1", "1", "2"]


def test_user_item_float_spellings_never_merge_ids(tmp_path: Path) -> None:
    """Ids are exact: a big ``X.0`` is X (not the nearest float); ``1e3`` is a bad line."""
    path = write(tmp_path, "ui.txt", "9007199254740993.0 1\n9007199254740992 2\n")
    df = read_interactions(path, "user-item")
    assert df["user"].tolist() == ["9007199254740993", "9007199254740992"]
    path = write(tmp_path, "e.txt", "1000 1\n1e3 2\n2 3\n")
    with pytest.raises(DataError, match="expected an integer, got '1e3'") as info:
        read_interactions(path, "user-item")
    assert str(info.value).startswith(f"{path}:2: ")
    with pytest.warns(UserWarning, match="skipped 1 malformed lines"):
        df = read_interactions(path, "user-item", skip_bad_lines=True)
    assert df["user"].tolist() == ["1000", "2"]
    path = write(tmp_path, "t.txt", "1 2 5\n1 2.5 6\n")
    with pytest.raises(DataError, match=r"expected an integer, got '2\.5'"):
        read_interactions(path, "user-item-time")


def test_json_float_id_too_large_to_be_exact(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.json",
        '{"reviewerID": 9007199254740993.0, "asin": "x", "unixReviewTime": 5}\n',
    )
    with pytest.raises(DataError, match=r"reviewerID: float id .* too large to be an exact"):
        read_interactions(path, "amazon-json")


def test_fast_path_reads_decimal_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recdenoiser.data.readers as readers

    def no_scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("the line-by-line scan must not run on a well-formed file")

    monkeypatch.setattr(readers, "_scan_fixed", no_scan)
    path = write(tmp_path, "ui.txt", "".join(f"{u}.0 {i}\n" for u in range(20) for i in range(5)))
    df = read_interactions(path, "user-item")
    assert df["user"].iloc[-1] == "19"
    assert df["user"].nunique() == 20


# ------------------------------------------------------------------------------ messages
def test_duplicate_warning_names_the_cli_options(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", "1 2\n1 2\n")
    with pytest.warns(UserWarning, match="duplicate rows") as caught:
        read_interactions(path, "user-item")
    message = str(caught[0].message)
    assert "--drop-duplicates" in message and "data.drop_duplicates=true" in message


@pytest.mark.parametrize(
    ("columns", "fragments"),
    [
        ({"user": "uid", "item": "iid", "time": "ts"}, ["unknown key 'time'", "timestamp"]),
        ({"user": "uid"}, ["missing key 'item'", "user, item, timestamp, rating"]),
        ({"user": "uid", "item": 3}, ["'item'", "column name"]),
    ],
)
def test_bad_column_mapping_is_one_line(columns: dict, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        read_interactions(FIXTURES / "table.csv", "table", columns=columns)
    message = str(info.value)
    assert "\n" not in message and "pydantic" not in message
    for fragment in fragments:
        assert fragment in message


def test_table_needs_mapping_speaks_cli_and_config() -> None:
    with pytest.raises(ConfigError) as info:
        read_interactions(FIXTURES / "table.csv", "table")
    message = str(info.value)
    assert "--columns" in message and "data.columns" in message
    assert "ColumnMapping(" not in message
