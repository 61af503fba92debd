"""Reading and writing batches (CSV or Parquet), strictly, and the data digest.

pandas is lenient where a pipeline must not be: it fills a short CSV row with NaN, drops
the extra field of a long row when ``index_col=False`` (or silently turns the first
column into the index without it), and renames a duplicated header to ``a.1``. Any of
those would let a truncated or corrupt batch train a model. So CSV text is first checked
row by row with the ``csv`` module, and every problem is a DataValidationError naming the
file, the column (None when not about a column) and the rule.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from aire import atomic
from aire.data.storage import (
    MissingObjectError,
    S3Settings,
    download_s3_object,
    parse_s3_uri,
    s3_client,
)
from aire.errors import DataValidationError, InputError

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
_DIGEST_VERSION = "aire-table-digest-v1"


def table_format(uri: str) -> str:
    """``"csv"`` or ``"parquet"`` from the name's extension; InputError for anything else."""
    name = uri.rstrip("/").rsplit("/", 1)[-1].lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputError(f"{uri}: unsupported table format (expected .csv, .parquet or .pq)")


def read_table(uri: str, *, s3: S3Settings | None = None) -> pd.DataFrame:
    """Read a batch from a local path, a ``file://`` URI or ``s3://``; never drops or fills rows."""
    fmt = table_format(uri)
    if uri.startswith("s3://"):
        bucket, key = parse_s3_uri(uri)
        with tempfile.TemporaryDirectory(prefix="aire-table-") as tmp:
            local = Path(tmp) / Path(key).name
            try:
                download_s3_object(s3_client(s3), bucket, key, local)
            except MissingObjectError:
                raise DataValidationError(uri, None, "file exists", "no such object") from None
            return _read_local(local, fmt, uri)
    if uri.startswith("file://"):
        return _read_local(Path(unquote(urlparse(uri).path)), fmt, uri)
    if "://" in uri:
        raise InputError(f"{uri}: unsupported URI scheme (use a path, file:// or s3://)")
    return _read_local(Path(uri), fmt, uri)


def _read_local(path: Path, fmt: str, name: str) -> pd.DataFrame:
    if not path.exists():
        raise DataValidationError(name, None, "file exists", "no such file")
    if not path.is_file():
        raise DataValidationError(name, None, "file exists", "it is a directory, not a file")
    data = path.read_bytes()
    if not data:
        raise DataValidationError(name, None, "file is not empty", "the file has 0 bytes")
    frame = _parse_csv(data, name) if fmt == "csv" else _parse_parquet(data, name)
    if len(frame) == 0:
        raise DataValidationError(
            name, None, "row count >= 1", "the table has a header but no rows"
        )
    return frame


def _parse_csv(data: bytes, name: str) -> pd.DataFrame:
    import pandas as pd

    try:
        # utf-8-sig: a byte-order mark (Excel exports) must not become part of the first name.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            name, None, "UTF-8 text", f"byte {exc.start}: {exc.reason}"
        ) from None
    data_rows = _check_csv_shape(text, name)
    frame = pd.read_csv(io.StringIO(text), index_col=False, skip_blank_lines=True)
    if len(frame) != data_rows:  # the shape check should make this impossible; never trust it
        raise DataValidationError(
            name, None, "complete rows", f"read {len(frame)} rows but the file has {data_rows}"
        )
    return frame


def _check_csv_shape(text: str, name: str) -> int:
    """Check that every row has exactly the header's field count; return the data row count."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows = 0
    try:
        for record in reader:
            if not record:  # a blank line; pandas skips these too, so counts stay aligned
                continue
            if header is None:
                header = record
                _check_header(header, name)
                continue
            rows += 1
            if len(record) < len(header):
                line = reader.line_num
                # The last row of a file that ends without a newline: cut off mid-row.
                cut = not text.endswith(("\n", "\r")) and next(reader, None) is None
                raise DataValidationError(
                    name,
                    None,
                    "complete rows",
                    f"line {line} has {len(record)} fields, the header has {len(header)}; "
                    f"column '{header[len(record)]}' onwards is missing"
                    + (" (the file ends mid-row: it was truncated)" if cut else ""),
                )
            if len(record) > len(header):
                raise DataValidationError(
                    name,
                    None,
                    "fields per row <= header",
                    f"line {reader.line_num} has {len(record)} fields, "
                    f"the header has {len(header)}",
                )
    except csv.Error as exc:  # e.g. an unterminated quote: the file was cut inside a field
        raise DataValidationError(
            name, None, "complete rows", f"line {reader.line_num}: {exc} (the file looks truncated)"
        ) from None
    if header is None:
        raise DataValidationError(name, None, "file is not empty", "the file has only blank lines")
    return rows


def _check_header(header: list[str], name: str) -> None:
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise DataValidationError(name, column, "unique column names", "the header repeats it")
        seen.add(column)


def _parse_parquet(data: bytes, name: str) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types for corrupt files
        raise DataValidationError(
            name, None, "readable Parquet", f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    # A named index written by pandas is a real column; an unnamed one is just positions.
    if any(level is not None for level in frame.index.names):
        return frame.reset_index()
    return frame.reset_index(drop=True)


def write_table(df: pd.DataFrame, path: Path | str) -> Path:
    """Write ``.csv`` or ``.parquet``/``.pq`` atomically (temporary name, then rename)."""
    target = Path(path)
    fmt = table_format(str(target))
    with atomic.replacing(target) as tmp:
        if fmt == "csv":
            df.to_csv(tmp, index=False, lineterminator="\n")
        else:
            df.to_parquet(tmp, index=False)
    return target


def table_digest(df: pd.DataFrame) -> str:
    """sha256 of a canonical serialization, recorded with models as the data digest.

    Canonical means: columns in name order (column order carries no meaning), rows in
    their order, every missing value (NaN, None, NaT, pd.NA) as JSON null, numbers as
    their shortest round-trip repr, so a CSV and a Parquet copy of the same data agree
    and the digest is the same in every process (nothing here depends on hash seeds).
    """
    digest = hashlib.sha256()
    digest.update(f"{_DIGEST_VERSION}\nrows={len(df)}\n".encode())
    for column in sorted(df.columns, key=str):
        series = df[column]
        cells = series.astype(object).to_numpy(copy=True)
        cells[series.isna().to_numpy()] = None  # NaN, None, NaT and pd.NA all mean "missing"
        digest.update(json.dumps(str(column)).encode() + b"\n")
        encoded = json.dumps(cells.tolist(), default=_json_default, allow_nan=True)
        digest.update(encoded.encode() + b"\n")
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    """Values json cannot encode (numpy scalars, timestamps) get a stable text form."""
    if hasattr(value, "item"):  # numpy scalar
        item = value.item()
        if isinstance(item, float) and not math.isfinite(item):
            return repr(item)
        return item
    return f"{type(value).__name__}:{value}"
