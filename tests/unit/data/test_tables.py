"""Reading batches strictly, writing them atomically, the data digest, and the local store.

The local object store and S3 URI parsing are tested here too (no service needed); the S3
store itself is tested against moto's server in tests/integration/test_s3_storage.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aire.data.storage import LocalStore, MissingObjectError, S3Store, open_store, parse_s3_uri
from aire.data.tables import read_table, table_digest, write_table
from aire.errors import DataValidationError, InputError
from aire.home import PROJECT_ROOT

HEADER = "age,credit_amount,housing,sex,risk\n"
ROWS = "35,1200.5,own,female,good\n52,4000,rent,male,bad\n"


def _write(path: Path, text: str | bytes) -> str:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [35, 52],
            "credit_amount": [1200.5, 4000.0],
            "housing": ["own", "rent"],
            "sex": ["female", "male"],
            "risk": ["good", "bad"],
        }
    )


# --- read_table: good input ----------------------------------------------------------------


def test_reads_csv_parquet_and_file_uri_alike(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "batch.csv", HEADER + ROWS)
    write_table(_frame(), tmp_path / "batch.parquet")
    write_table(_frame(), tmp_path / "batch.pq")
    frames = [
        read_table(csv_path),
        read_table(str(tmp_path / "batch.parquet")),
        read_table(str(tmp_path / "batch.pq")),
        read_table((tmp_path / "batch.csv").as_uri()),
    ]
    for frame in frames:
        pd.testing.assert_frame_equal(frame, _frame())


def test_byte_order_mark_does_not_rename_the_first_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.csv", ("\ufeff" + HEADER + ROWS).encode("utf-8"))
    assert next(iter(read_table(path).columns)) == "age"


def test_blank_trailing_lines_are_not_rows(tmp_path: Path) -> None:
    assert len(read_table(_write(tmp_path / "b.csv", HEADER + ROWS + "\n\n"))) == 2


# --- read_table: bad input, each naming file, column and rule --------------------------------


@pytest.mark.parametrize(
    ("name", "content", "rule", "column", "detail_part"),
    [
        ("empty.csv", b"", "file is not empty", None, "0 bytes"),
        ("header_only.csv", HEADER, "row count >= 1", None, "no rows"),
        ("cut.csv", HEADER + ROWS + "41,990,fr", "complete rows", None, "truncated"),
        (
            "short_row.csv",
            HEADER + "35,1200\n" + ROWS,
            "complete rows",
            None,
            "line 2 has 2 fields",
        ),
        ("open_quote.csv", HEADER + ROWS + '41,990,"fr', "complete rows", None, "truncated"),
        (
            "long_row.csv",
            HEADER + "35,1200,own,female,good,EXTRA\n",
            "fields per row <= header",
            None,
            "6 fields",
        ),
        ("dup.csv", "age,age,housing\n1,2,own\n", "unique column names", "age", "repeats"),
        (
            "latin1.csv",
            HEADER.encode() + "35,1,caf\xe9,f,good\n".encode("latin-1"),
            "UTF-8 text",
            None,
            "byte",
        ),
        ("garbage.parquet", b"this is not parquet at all", "readable Parquet", None, ""),
        ("empty.pq", b"", "file is not empty", None, ""),
    ],
)
def test_bad_files_fail_naming_file_column_and_rule(
    tmp_path: Path, name: str, content: str | bytes, rule: str, column: str | None, detail_part: str
) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(DataValidationError) as caught:
        read_table(path)
    assert (caught.value.file, caught.value.column, caught.value.rule) == (path, column, rule)
    assert detail_part in caught.value.detail
    assert path in str(caught.value)


def test_truncated_parquet_is_unreadable(tmp_path: Path) -> None:
    whole = write_table(_frame(), tmp_path / "whole.parquet").read_bytes()
    path = _write(tmp_path / "half.parquet", whole[: len(whole) // 2])
    with pytest.raises(DataValidationError) as caught:
        read_table(path)
    assert caught.value.rule == "readable Parquet"


def test_parquet_without_rows_fails_row_count(tmp_path: Path) -> None:
    path = write_table(_frame().iloc[0:0], tmp_path / "none.parquet")
    with pytest.raises(DataValidationError) as caught:
        read_table(str(path))
    assert caught.value.rule == "row count >= 1"


def test_missing_file_fails_rule_file_exists(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(DataValidationError) as caught:
        read_table(missing)
    assert (caught.value.file, caught.value.rule) == (missing, "file exists")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataValidationError, match="directory"):
        read_table(str(tmp_path / "dir.csv"))


@pytest.mark.parametrize("uri", ["batch.xlsx", "batch.csv.gz", "batch", "http://host/b.csv"])
def test_unsupported_formats_and_schemes_are_input_errors(uri: str) -> None:
    with pytest.raises(InputError, match="unsupported"):
        read_table(uri)


# --- write_table ---------------------------------------------------------------------------


def test_write_table_replaces_atomically_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    write_table(_frame(), target)
    unserializable = pd.DataFrame({"x": [object(), object()]})
    with pytest.raises(ValueError):  # pyarrow's ArrowInvalid
        write_table(unserializable, target)
    pd.testing.assert_frame_equal(read_table(str(target)), _frame())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]  # no temp file left


def test_write_table_rejects_unknown_extensions(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"out\.json"):
        write_table(_frame(), tmp_path / "out.json")
    assert not list(tmp_path.iterdir())


# --- table_digest --------------------------------------------------------------------------


def test_digest_is_the_same_for_csv_and_parquet_copies_and_column_order(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[1, "housing"] = None
    csv_copy = read_table(str(write_table(frame, tmp_path / "a.csv")))
    parquet_copy = read_table(str(write_table(frame, tmp_path / "a.parquet")))
    assert table_digest(csv_copy) == table_digest(parquet_copy) == table_digest(frame)
    assert table_digest(frame[list(reversed(frame.columns))]) == table_digest(frame)


def test_digest_changes_with_any_value_or_row_order() -> None:
    frame = _frame()
    changed = frame.copy()
    changed.loc[0, "credit_amount"] = 1200.6
    assert table_digest(changed) != table_digest(frame)
    assert table_digest(frame.iloc[::-1].reset_index(drop=True)) != table_digest(frame)
    as_text = frame.astype({"age": str})  # "35" is not 35
    assert table_digest(as_text) != table_digest(frame)
    with_inf = frame.astype({"age": float})
    with_inf.loc[0, "age"] = np.inf
    assert table_digest(with_inf) != table_digest(frame.astype({"age": float}))


def test_digest_is_stable_across_processes() -> None:
    code = (
        "import pandas as pd; from aire.data.tables import table_digest; "
        "frame = pd.DataFrame({'a': [1, 2], 'b': ['x', None], 'c': [0.1, float('nan')]}); "
        "print(table_digest(frame))"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": "include"}
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=PROJECT_ROOT,
        )
        outputs.add(done.stdout.strip())
    local = table_digest(pd.DataFrame({"a": [1, 2], "b": ["x", None], "c": [0.1, float("nan")]}))
    assert outputs == {local}


# --- storage: URIs and the local store -------------------------------------------------------


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://my-bucket/a/b.csv") == ("my-bucket", "a/b.csv")
    assert parse_s3_uri("s3://my-bucket/k?v#1") == ("my-bucket", "k?v#1")
    assert parse_s3_uri("s3://my-bucket", require_key=False) == ("my-bucket", "")


@pytest.mark.parametrize(
    "uri",
    [
        "my-bucket/key",
        "s3://",
        "s3:///key",
        "s3://Bad_Bucket/k",
        "s3://my-bucket",
        "s3://my-bucket/",
        "https://my-bucket/k",
    ],
)
def test_parse_s3_uri_rejects_bad_uris(uri: str) -> None:
    with pytest.raises(InputError, match=r"s3|S3|bucket|key"):
        parse_s3_uri(uri)


def test_local_store_put_get_exists(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source = tmp_path / "report.html"
    source.write_text("<html>ok</html>")
    uri = store.put_file(source, "reports/run1/report.html")
    assert (
        uri
        == (tmp_path / "store/reports/run1/report.html").as_uri()
        == store.uri("reports/run1/report.html")
    )
    assert store.put_bytes(b'{"a": 1}', "decisions/d.json").endswith("decisions/d.json")
    assert store.exists("reports/run1/report.html") and not store.exists("reports/other.html")
    got = store.get_file(uri, tmp_path / "back/report.html")
    assert got.read_text() == "<html>ok</html>"
    assert store.get_file("decisions/d.json", tmp_path / "d.json").read_bytes() == b'{"a": 1}'
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_local_store_rejects_escaping_keys_and_missing_objects(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for key in ("../outside.txt", "a/../../b", "", "a//b", "./a"):
        with pytest.raises(InputError, match="key"):
            store.put_bytes(b"x", key)
    with pytest.raises(MissingObjectError):
        store.get_file("absent.txt", tmp_path / "x")
    with pytest.raises(InputError):
        store.get_file("s3://bucket/key", tmp_path / "x")
    with pytest.raises(InputError, match="no such file"):
        store.put_file(tmp_path / "absent.bin", "k")


def test_local_store_put_bytes_replaces_whole_objects(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes(b"first version", "k.txt")
    store.put_bytes(b"2nd", "k.txt")
    assert (tmp_path / "k.txt").read_bytes() == b"2nd"
    assert [p.name for p in tmp_path.iterdir()] == ["k.txt"]


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    default = open_store(None, tmp_path / "home")
    assert isinstance(default, LocalStore) and default.root == (tmp_path / "home").resolve()
    by_uri = open_store((tmp_path / "x").as_uri(), tmp_path)
    assert isinstance(by_uri, LocalStore) and by_uri.root == (tmp_path / "x").resolve()
    by_path = open_store(str(tmp_path / "y"), tmp_path)
    assert isinstance(by_path, LocalStore) and by_path.root == (tmp_path / "y").resolve()
    s3 = open_store("s3://ml-bucket/aire/reports/", tmp_path)
    assert isinstance(s3, S3Store) and s3.uri("r.html") == "s3://ml-bucket/aire/reports/r.html"
    assert open_store("s3://ml-bucket", tmp_path).uri("r.html") == "s3://ml-bucket/r.html"
    with pytest.raises(InputError, match="unsupported"):
        open_store("gs://bucket/p", tmp_path)
    with pytest.raises(InputError, match="bucket"):
        open_store("s3://UPPER/p", tmp_path)


# --- resource limits, checked before the work (issue 13, cases 7 and 13) -------------------------


def test_a_csv_with_100000_columns_is_refused_at_its_header(tmp_path: Path) -> None:
    """The attack: 889 KB, 100,000 columns ran past 300 s at 1.4 GB in validation."""
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join("1" * 100_000) + "\n")
    with pytest.raises(DataValidationError, match="columns <= 2000"):
        read_table(str(path))


def test_a_small_parquet_that_decodes_to_10_million_rows_is_refused_from_its_footer(tmp_path: Path) -> None:
    """The attack: a 46 KB Parquet file decoded to 10M rows and 1 GB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"a": pa.array(np.zeros(10_000_000, dtype=np.int8))}), path, compression="zstd")
    assert path.stat().st_size < 200_000
    with pytest.raises(DataValidationError, match="rows <= 5000000"):
        read_table(str(path))


def test_limits_are_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRE_MAX_ROWS", "1")
    with pytest.raises(DataValidationError, match="rows <= 1"):
        read_table(str(write_table(_frame(), tmp_path / "a.csv")))
    monkeypatch.setenv("AIRE_MAX_ROWS", "lots")
    with pytest.raises(InputError, match="not a number"):
        read_table(str(tmp_path / "a.csv"))


def test_nested_parquet_columns_are_refused_by_name(tmp_path: Path) -> None:
    """The attack: a struct column crashed later with a traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"age": [30, 40], "address": [{"city": "a"}, {"city": "b"}]}), path)
    with pytest.raises(DataValidationError, match="nested type") as caught:
        read_table(str(path))
    assert caught.value.column == "address"


def test_a_batch_linked_to_a_file_outside_the_data_roots_is_refused(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack (issue 13, case 10): a .csv symlink to a system file was read and copied whole."""
    outside = tmp_path / "system"
    outside.mkdir()
    secret = write_table(_frame(), outside / "passwd.csv")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "batch.csv").symlink_to(secret)
    with pytest.raises(DataValidationError, match="links outside its folder") as caught:
        read_table(str(landing / "batch.csv"))
    assert "age" not in str(caught.value)
    (landing / "inside.csv").symlink_to(write_table(_frame(), landing / "real.csv"))
    assert len(read_table(str(landing / "inside.csv"))) == 2  # a link within the folder is fine
    monkeypatch.setenv("AIRE_DATA_ROOTS", str(outside))
    assert len(read_table(str(landing / "batch.csv"))) == 2  # and so is a configured root
