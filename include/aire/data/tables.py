"""Reading and writing batches (CSV or Parquet), strictly, and the data digest.

pandas is lenient where a pipeline must not be: it fills a short CSV row with NaN, drops
the extra field of a long row when ``index_col=False`` (or silently turns the first
column into the index without it), and renames a duplicated header to ``a.1``. Any of
those would let a truncated or corrupt batch train a model. So CSV text is first checked
row by row with the ``csv`` module, and every problem is a DataValidationError naming the
file, the column (None when not about a column) and the rule.

Limits on columns, rows and decoded size (``TableLimits``; environment ``AIRE_MAX_COLUMNS``,
``AIRE_MAX_ROWS``, ``AIRE_MAX_DECODED_MB``) are checked before the work: a CSV's header
before its rows are parsed, a Parquet file's footer before any column is decoded. A few
kilobytes must not become a gigabyte frame or a report quadratic in 100,000 columns.
Parquet columns must be flat: a nested one is refused by name, not a traceback later.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TableLimits:
    max_columns: int = 2_000
    max_rows: int = 5_000_000
    max_decoded_bytes: int = 2 * 1024**3

    @classmethod
    def from_env(cls) -> TableLimits:
        try:
            return cls(int(os.environ.get("AIRE_MAX_COLUMNS", cls.max_columns)),
                       int(os.environ.get("AIRE_MAX_ROWS", cls.max_rows)),
                       int(float(os.environ.get("AIRE_MAX_DECODED_MB", cls.max_decoded_bytes / 1024**2)) * 1024**2))
        except ValueError as exc:
            raise InputError(f"AIRE_MAX_COLUMNS, AIRE_MAX_ROWS, AIRE_MAX_DECODED_MB: not a number: {exc}") from None


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
    _check_inside_roots(path, name)
    if not path.is_file():
        raise DataValidationError(name, None, "file exists", "it is a directory, not a file")
    data = path.read_bytes()
    if not data:
        raise DataValidationError(name, None, "file is not empty", "the file has 0 bytes")
    limits = TableLimits.from_env()
    if fmt == "csv" and len(data) > limits.max_decoded_bytes:
        raise DataValidationError(name, None, f"size <= {limits.max_decoded_bytes} bytes",
                                  f"the file has {len(data)} bytes")
    frame = _parse_csv(data, name, limits) if fmt == "csv" else _parse_parquet(data, name, limits)
    if len(frame) == 0:
        raise DataValidationError(
            name, None, "row count >= 1", "the table has a header but no rows"
        )
    return frame


def _check_inside_roots(path: Path, name: str) -> None:
    """A batch that is a symlink must point inside its own folder or a root in ``AIRE_DATA_ROOTS``
    (``os.pathsep``-separated): a ``.csv`` link to a system file would be copied whole into
    quarantine and the store."""
    target = path.resolve()
    roots = [path.absolute().parent.resolve()]
    roots += [Path(root).resolve() for root in os.environ.get("AIRE_DATA_ROOTS", "").split(os.pathsep) if root]
    if not any(target.is_relative_to(root) for root in roots):
        raise DataValidationError(name, None, "inside the data roots",
                                  "it links outside its folder (allow a root with AIRE_DATA_ROOTS)")


def _parse_csv(data: bytes, name: str, limits: TableLimits) -> pd.DataFrame:
    import pandas as pd

    try:
        # utf-8-sig: a byte-order mark (Excel exports) must not become part of the first name.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            name, None, "UTF-8 text", f"byte {exc.start}: {exc.reason}"
        ) from None
    data_rows = _check_csv_shape(text, name, limits)
    frame = pd.read_csv(io.StringIO(text), index_col=False, skip_blank_lines=True)
    if len(frame) != data_rows:  # the shape check should make this impossible; never trust it
        raise DataValidationError(
            name, None, "complete rows", f"read {len(frame)} rows but the file has {data_rows}"
        )
    return frame


def _check_csv_shape(text: str, name: str, limits: TableLimits) -> int:
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
                if len(header) > limits.max_columns:
                    raise DataValidationError(name, None, f"columns <= {limits.max_columns}",
                                              f"the header has {len(header)} columns")
                _check_header(header, name)
                continue
            rows += 1
            if rows > limits.max_rows:
                raise DataValidationError(name, None, f"rows <= {limits.max_rows}",
                                          f"line {reader.line_num} is past the limit")
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


def _parse_parquet(data: bytes, name: str, limits: TableLimits) -> pd.DataFrame:
    import pandas as pd

    _check_parquet_footer(data, name, limits)
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


def _check_parquet_footer(data: bytes, name: str, limits: TableLimits) -> None:
    """Shape, size and flatness from the footer alone, before anything is decoded."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(io.BytesIO(data)).metadata
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types for corrupt files
        raise DataValidationError(name, None, "readable Parquet", f"{type(exc).__name__}: {str(exc)[:300]}") from None
    schema = meta.schema.to_arrow_schema()
    if len(schema) > limits.max_columns:
        raise DataValidationError(name, None, f"columns <= {limits.max_columns}", f"the file has {len(schema)}")
    if meta.num_rows > limits.max_rows:
        raise DataValidationError(name, None, f"rows <= {limits.max_rows}", f"the file has {meta.num_rows}")
    # The footer's uncompressed size undercounts dictionary-encoded data; 8 bytes a cell is
    # what pandas needs at least.
    decoded = max(sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)),
                  meta.num_rows * len(schema) * 8)
    if decoded > limits.max_decoded_bytes:
        raise DataValidationError(name, None, f"decoded size <= {limits.max_decoded_bytes} bytes",
                                  f"the file decodes to {decoded} bytes")
    for column in schema:
        if column.type.num_fields:  # struct, list, map: not a column a model can take
            raise DataValidationError(name, column.name, "flat columns", f"nested type {column.type}")


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
