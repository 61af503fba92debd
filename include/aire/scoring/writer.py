"""Scored output, written so that a reader sees the whole batch or nothing.

Chunks are appended to a temporary file (Parquet row groups through pyarrow's
ParquetWriter, or CSV) and the file becomes the output only when every chunk is in: a local
target by an fsync'd rename in its own folder (``aire.atomic.replacing``), an ``s3://`` target
by one upload after the last chunk (a PUT is atomic: a reader sees the old object or the new
one). The summary JSON is written after the table, so a summary always describes an output
that exists. A failure leaves no output and no temporary file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from aire import atomic
from aire.data.storage import S3Settings, S3Store, parse_s3_uri
from aire.data.tables import table_format
from aire.errors import InputError


class ChunkWriter:
    """Appends scored chunks to one temporary table file."""

    def __init__(self, path: Path, fmt: str, text_columns: tuple[str, ...]) -> None:
        self.path, self.fmt, self.text_columns = path, fmt, text_columns
        self.rows = 0
        self._parquet: Any = None

    def write(self, chunk: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(str(self.path), table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        else:
            from aire.analysis.report import spreadsheet_safe

            # Cells a spreadsheet would run as formulas: only the columns that come from the batch.
            safe = chunk.copy(deep=False)
            present = [c for c in self.text_columns if c in chunk.columns]
            if present:
                safe[present] = spreadsheet_safe(chunk[present])
            safe.to_csv(self.path, mode="a", header=self.rows == 0, index=False, lineterminator="\n")
        self.rows += len(chunk)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


def summary_uri(out_uri: str) -> str:
    """``…/scores.parquet`` -> ``…/scores.summary.json``."""
    stem = out_uri.rsplit(".", 1)[0] if "." in out_uri.rsplit("/", 1)[-1] else out_uri
    return f"{stem}.summary.json"


@contextmanager
def scored_output(out_uri: str, *, s3: S3Settings | None = None,
                  text_columns: tuple[str, ...] = ()) -> Iterator[ChunkWriter]:
    """A ChunkWriter whose file becomes ``out_uri`` only if the block finishes."""
    fmt = table_format(out_uri)
    with ExitStack() as stack:
        if out_uri.startswith("s3://"):
            bucket, key = parse_s3_uri(out_uri)
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aire-score-out-")))
            writer = ChunkWriter(folder / Path(key).name, fmt, text_columns)
            try:
                yield writer
            finally:
                writer.close()
            _empty_table_if_none(writer)
            S3Store(bucket, "", s3).put_file(writer.path, key)
            return
        target = _local_path(out_uri)
        temp = stack.enter_context(atomic.replacing(target))
        temp.unlink()  # the writers create it; an append must not find mkstemp's empty file
        writer = ChunkWriter(temp, fmt, text_columns)
        try:
            yield writer
        finally:
            writer.close()
        _empty_table_if_none(writer)


def write_summary(out_uri: str, summary: dict[str, Any], *, s3: S3Settings | None = None) -> str:
    uri = summary_uri(out_uri)
    data = json.dumps(summary, indent=2, default=str, allow_nan=False).encode() + b"\n"
    if uri.startswith("s3://"):
        bucket, key = parse_s3_uri(uri)
        return S3Store(bucket, "", s3).put_bytes(data, key)
    atomic.write_bytes(_local_path(uri), data)
    return uri


def _empty_table_if_none(writer: ChunkWriter) -> None:
    if not writer.path.exists():
        raise InputError(f"{writer.path.name}: no chunk was written")


def _local_path(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if "://" in uri:
        raise InputError(f"{uri}: unsupported output URI (use a path, file:// or s3://)")
    return Path(uri)
