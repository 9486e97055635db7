"""Streamed sources: CSV, Parquet and SQL read as a sequence of pandas tables of bounded size.

A `Stream` can be read again from the start (statistics take one pass, the tensor cache a
second), and knows its row count when the source says it cheaply (Parquet metadata, COUNT(*)).
Whether to stream is decided here too: `data.streaming`, or by the source's size.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlpipe.collect import check_unique_columns
from dlpipe.collect.files import FORMATS, NA_VALUES, SNIFF_BYTES, _sniff_delimiter, _tidy, decode_text, detect_header
from dlpipe.errors import ConfigError, DataError

STREAM_ROWS = 1_000_000  # auto streams a source with more rows than this
STREAM_CSV_BYTES = 200 * 2**20  # or a CSV file larger than this (counting its rows costs a read)


@dataclass
class Stream:
    """A source read in batches; `batches()` starts from the first row every time it is called."""

    origin: str
    read: Callable[[], Iterator[pd.DataFrame]]
    rows: int | None = None  # known without reading, else None
    notes: list[str] = field(default_factory=list)  # filled in while reading (e.g. dropped lines)
    dropped_lines: int = 0

    def batches(self) -> Iterator[pd.DataFrame]:
        for frame in self.read():
            frame.columns = [str(c) for c in frame.columns]
            yield frame


def should_stream(data: Any, source: Any) -> bool:
    """Whether `data.streaming` (auto: the source's size) asks for the streamed path."""
    from dlpipe.spec import FileSource, SqlSource

    if isinstance(source, str):
        source = FileSource(path=source)
    streamable = isinstance(source, SqlSource) or (
        isinstance(source, FileSource) and _format(source) in ("csv", "tsv", "parquet")
    )
    if data.streaming == "off" or (data.streaming == "auto" and not streamable):
        return False
    if not streamable:
        raise ConfigError(
            "streaming reads CSV, TSV, Parquet and SQL sources only",
            where="data.streaming",
            fix="use one of those sources, or streaming: off",
        )
    if data.validation is not None or data.test is not None:
        if data.streaming == "on":
            raise ConfigError(
                "a streamed source is split by a hash of each row; "
                "separate validation and test sources are not streamed",
                where="data.streaming",
                fix="remove data.validation and data.test, or set streaming: off",
            )
        return False
    if data.streaming == "on":
        return True
    if isinstance(source, SqlSource):
        from dlpipe.collect.sql import count_sql_rows

        return (count_sql_rows(source) or 0) > STREAM_ROWS
    path = Path(source.path)
    if _format(source) == "parquet":
        return (_parquet_rows(path) or 0) > STREAM_ROWS
    return path.is_file() and path.stat().st_size > STREAM_CSV_BYTES


def open_stream(source: Any, batch_rows: int) -> Stream:
    """A Stream over a CSV/TSV/Parquet file or a SQL query."""
    from dlpipe.spec import FileSource, SqlSource

    if isinstance(source, str):
        source = FileSource(path=source)
    if isinstance(source, SqlSource):
        from dlpipe.collect.sql import count_sql_rows, sql_batches
        from dlpipe.redact import shown_url

        return Stream(shown_url(source.url), lambda: sql_batches(source, batch_rows), count_sql_rows(source))
    path = Path(source.path)
    if not path.is_file():
        raise DataError("file not found", where=str(path), fix="check data.source in the pipeline file")
    if _format(source) == "parquet":
        rows = _parquet_rows(path)
        if rows is None:
            raise DataError("not a readable Parquet file", where=str(path))
        return Stream(str(path), lambda: _parquet_batches(path, batch_rows), rows)
    return _csv_stream(path, source, batch_rows)


def _format(source: Any) -> str | None:
    return source.format or FORMATS.get(Path(source.path).suffix.lower())


def _parquet_rows(path: Path) -> int | None:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:
        return None


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        # pre-buffering keeps what it read for the whole file: pyarrow's pool peaked at 577 MB over a
        # 10M-row file with it (634 MB through pyarrow.dataset), 35 MB without
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        for batch in parquet.iter_batches(batch_size=batch_rows):
            yield batch.to_pandas()
    except OSError as exc:  # pyarrow's errors for damaged files subclass it
        raise DataError(f"not a readable Parquet file: {str(exc).splitlines()[0]}", where=str(path)) from None


def _csv_stream(path: Path, src: Any, batch_rows: int) -> Stream:
    """CSV read by pyarrow in blocks, every field as text and then tidied as the in-memory reader does.

    Delimiter, header and encoding are sniffed from the first 64 KiB (the in-memory reader sees the
    whole file); rows with the wrong number of fields are dropped and counted, as there.
    """
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head.strip():
        raise DataError("the file is empty", where=str(path))
    cut = head[: head.rfind(b"\n") + 1] or head  # no half character or row at the end of the sample
    sample, encoding = decode_text(cut, src.encoding, path)
    delimiter = src.delimiter or ("\t" if _format(src) == "tsv" else None) or _sniff_delimiter(sample)
    header = src.header if src.header is not None else detect_header(sample, delimiter)
    first = next(csv.reader([sample.splitlines()[0]], delimiter=delimiter, skipinitialspace=True))
    names = [n.strip() for n in first] if header else [f"column_{i}" for i in range(len(first))]
    if header:
        check_unique_columns([n for n in names if n], str(path))
    notes = [] if encoding == "utf-8" else [f"read as {encoding} (not UTF-8)"]
    stream = Stream(str(path), lambda: iter(()), None, notes)
    # a block holds about batch_rows rows of the sample's average length (at least 64 KiB)
    block = max(1 << 16, batch_rows * len(cut) // max(1, cut.count(b"\n")))
    stream.read = lambda: _csv_batches(path, stream, names, header, delimiter, encoding, block)
    return stream


def _csv_batches(
    path: Path, stream: Stream, names: list[str], header: bool, delimiter: str, encoding: str, block: int
) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    bad: list[int] = []

    def skip(row: Any) -> str:
        bad.append(row.number if row.number and row.number > 0 else -1)
        return "skip"

    read = pcsv.ReadOptions(
        column_names=names,
        skip_rows=1 if header else 0,
        encoding=encoding,
        block_size=block,
        use_threads=False,  # row numbers for the dropped rows; the cores go to the transforms
    )
    parse = pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=skip, newlines_in_values=True)
    convert = pcsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, null_values=NA_VALUES, strings_can_be_null=True
    )
    try:
        reader = pcsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            if batch.num_rows:
                yield _tidy(batch.to_pandas(), str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"not a readable CSV file: {str(exc).splitlines()[0]}", where=str(path)) from None
    if bad and not stream.dropped_lines:  # the second read (the cache) finds the same rows
        where = f" (first: line {bad[0]})" if bad[0] > 0 else ""  # pyarrow counts the header line too
        stream.notes.append(f"dropped {len(bad)} rows with the wrong number of fields{where}")
    stream.dropped_lines = len(bad)
