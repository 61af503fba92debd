"""S3Store and read_table against moto's S3 server over HTTP on loopback (boto3's wire protocol)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aire.data.storage import MissingObjectError, S3Settings, S3Store, open_store, s3_client
from aire.data.tables import read_table
from aire.errors import DataValidationError, InputError
from tests.support.servers import threaded_s3

pytestmark = pytest.mark.integration

BUCKET = "aire-test"
CSV = "age,credit_amount,housing,sex,risk\n35,1200.5,own,female,good\n52,4000,rent,male,bad\n"


@pytest.fixture(scope="module")
def settings() -> Iterator[S3Settings]:
    with threaded_s3(BUCKET) as s3:
        yield s3


@pytest.fixture(scope="module")
def client(settings: S3Settings) -> Any:
    return s3_client(settings)


def _frame() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(CSV))


def test_read_csv_and_parquet_from_s3(settings: S3Settings, client: Any) -> None:
    client.put_object(Bucket=BUCKET, Key="landing/batch.csv", Body=CSV.encode())
    buffer = io.BytesIO()
    _frame().to_parquet(buffer, index=False)
    client.put_object(Bucket=BUCKET, Key="landing/batch.parquet", Body=buffer.getvalue())
    for key in ("landing/batch.csv", "landing/batch.parquet"):
        pd.testing.assert_frame_equal(read_table(f"s3://{BUCKET}/{key}", s3=settings), _frame())


def test_bad_s3_objects_fail_naming_the_uri_and_rule(settings: S3Settings, client: Any) -> None:
    missing = f"s3://{BUCKET}/landing/absent.csv"
    with pytest.raises(DataValidationError) as caught:
        read_table(missing, s3=settings)
    assert (caught.value.file, caught.value.rule) == (missing, "file exists")
    client.put_object(Bucket=BUCKET, Key="landing/cut.csv", Body=CSV.encode() + b"41,99")
    cut = f"s3://{BUCKET}/landing/cut.csv"
    with pytest.raises(DataValidationError) as caught:
        read_table(cut, s3=settings)
    assert (caught.value.file, caught.value.rule) == (cut, "complete rows")


def test_s3_store_put_get_exists(settings: S3Settings, client: Any, tmp_path: Path) -> None:
    store = open_store(f"s3://{BUCKET}/aire/run-1", tmp_path, settings)
    assert isinstance(store, S3Store)
    report = tmp_path / "report.html"
    report.write_text("<html>drift</html>")
    uri = store.put_file(report, "reports/drift.html")
    assert uri == f"s3://{BUCKET}/aire/run-1/reports/drift.html"
    head = client.head_object(Bucket=BUCKET, Key="aire/run-1/reports/drift.html")
    assert head["ContentType"] == "text/html"
    assert store.put_bytes(b'{"ok": true}', "decision.json") == store.uri("decision.json")
    assert store.exists("decision.json") and not store.exists("nothing.json")

    assert store.get_file(uri, tmp_path / "a/drift.html").read_text() == "<html>drift</html>"
    assert store.get_file("decision.json", tmp_path / "d.json").read_bytes() == b'{"ok": true}'
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["drift.html"]  # no temp left


def test_s3_store_errors(settings: S3Settings, tmp_path: Path) -> None:
    store = S3Store(BUCKET, "aire", settings)
    target = tmp_path / "kept.txt"
    target.write_text("previous")
    with pytest.raises(MissingObjectError):
        store.get_file("missing.txt", target)
    assert target.read_text() == "previous"  # a failed download leaves the old file intact
    with pytest.raises(InputError, match="key"):
        store.put_bytes(b"x", "../escape")
    with pytest.raises(InputError):
        store.get_file("file:///etc/passwd", target)
    with pytest.raises(InputError, match="no such file"):
        store.put_file(tmp_path / "absent.bin", "k")
    # A bucket that does not exist is a configuration error, not "absent".
    with pytest.raises(InputError, match="no such bucket"):
        S3Store("no-such-bucket", "", settings).exists("k")
    with pytest.raises(InputError, match="no such bucket"):
        read_table("s3://no-such-bucket/batch.csv", s3=settings)
