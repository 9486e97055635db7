"""Files: CSV/TSV (sniffed delimiter, header and encoding), Parquet and JSON lines."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from dlpipe.collect import Collected, check_unique_columns
from dlpipe.errors import DataError

NA_VALUES = ["", "?", "NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "None", "none", "#N/A"]
FORMATS = {
    ".csv": "csv",
    ".data": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
SNIFF_BYTES = 64 * 1024


def read_file(src) -> Collected:
    """Read the file a FileSource names; the format comes from `format` or the extension."""
    path = Path(src.path)
    if not path.exists():
        raise DataError("file not found", where=str(path), fix="check data.source in the pipeline file")
    if path.is_dir():
        raise DataError("is a folder, not a data file", where=str(path))
    fmt = src.format or FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"unknown file type {path.suffix!r}",
            where=str(path),
            fix=f"use one of {', '.join(sorted(set(FORMATS)))} or set data.source.format",
        )
    if fmt == "parquet":
        return _read_parquet(path)
    if fmt == "jsonl":
        return _read_jsonl(path)
    return _read_csv(path, src, "\t" if fmt == "tsv" else None)


def _read_parquet(path: Path) -> Collected:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise DataError(f"not a readable Parquet file: {str(exc).splitlines()[0]}", where=str(path)) from None
    return Collected(frame, str(path))


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; a permission or disk error names the file."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", where=str(path)) from None


def _read_jsonl(path: Path) -> Collected:
    text, _, notes, blanked = decode_lines(_read_bytes(path), None, path)
    records, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(number)
    if not records:
        raise DataError("no JSON object on any line", where=str(path), fix="one JSON object per line is expected")
    notes += [f"dropped {len(bad)} lines that are not JSON objects (first: line {bad[0]})"] if bad else []
    return Collected(pd.DataFrame.from_records(records), str(path), notes=notes, dropped_lines=len(bad) + blanked)


def decode_text(raw: bytes, encoding: str | None, path: Path) -> tuple[str, str]:
    """Text and the encoding used: the one given, else UTF-8, else the detected one."""
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as exc:
            raise DataError(f"cannot decode as {encoding}: {exc}", where=str(path)) from None
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    # Detectors guess wildly between 8-bit code pages on small files (hp_roman8, mac_turkish...),
    # while real exports that are not UTF-8 are overwhelmingly Windows-1252 / Latin-1. Trust the
    # detector only for encodings that have a structure to detect: UTF-16/32 and multi-byte CJK.
    best = from_bytes(raw[: 1024 * 1024]).best()
    guess = [best.encoding] if best and _structured(best.encoding) else []
    for candidate in [*guess, "cp1252", "latin-1"]:
        try:
            return raw.decode(candidate), candidate
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("latin-1"), "latin-1"  # unreachable: latin-1 decodes any byte


def decode_lines(raw: bytes, encoding: str | None, path: Path) -> tuple[str, str, list[str], int]:
    """decode_text for a file read whole, line by line where that keeps more: (text, encoding, notes,
    lines blanked). A UTF-8 file with a few lines from a Windows export keeps its UTF-8 (decoding
    it all as cp1252 garbled every accent), those lines read as cp1252; a line holding NUL bytes is
    binary garbage and is blanked, so the line numbers later notes give stay the file's."""
    lines = raw.split(b"\n")
    foreign = [] if encoding or _looks_wide(raw) else [i for i, line in enumerate(lines) if not _utf8(line)]
    if foreign and len(foreign) <= max(1, len(lines) // 10):
        text = "\n".join(line.decode("utf-8") if _utf8(line) else line.decode("cp1252", "replace") for line in lines)
        text, used = text.removeprefix("\ufeff"), "utf-8"
        notes = [f"{len(foreign)} lines not UTF-8, read as cp1252 (first: line {foreign[0] + 1})"]
    else:
        text, used = decode_text(raw, encoding, path)
        notes = [] if used == "utf-8" else [f"read as {used} (not UTF-8)"]
    if "\x00" not in text:
        return text, used, notes, 0
    kept = text.split("\n")
    nul = [i for i, line in enumerate(kept) if "\x00" in line]
    for i in nul:
        kept[i] = ""
    notes.append(f"dropped {len(nul)} lines holding NUL bytes (first: line {nul[0] + 1})")
    return "\n".join(kept), used, notes, len(nul)


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _looks_wide(raw: bytes) -> bool:
    """UTF-16/32 (a BOM, or NUL in many bytes): never decoded line by line."""
    return raw[:2] in (b"\xff\xfe", b"\xfe\xff") or raw[:4096].count(0) > len(raw[:4096]) // 4


STRUCTURED_ENCODINGS = (
    "utf16",
    "utf32",
    "gb18030",
    "gb2312",
    "gbk",
    "big5",
    "shiftjis",
    "cp932",
    "eucjp",
    "euckr",
    "cp949",
    "iso2022",
)


def _structured(encoding: str) -> bool:
    return encoding.lower().replace("-", "").replace("_", "").startswith(STRUCTURED_ENCODINGS)


def _read_csv(path: Path, src, default_delimiter: str | None) -> Collected:
    raw = _read_bytes(path)
    if not raw.strip():
        raise DataError("the file is empty", where=str(path))
    text, encoding, notes, blanked = decode_lines(raw, src.encoding, path)
    sample = text[:SNIFF_BYTES]
    delimiter = src.delimiter or default_delimiter or _sniff_delimiter(sample)
    header = src.header if src.header is not None else detect_header(sample, delimiter)
    if src.header is None and not header:
        notes.append("no header row detected: columns are named column_0, column_1, ...")
    text, dropped, first = _drop_ragged_records(text, delimiter, header)
    if header:
        # pandas renames a repeated name to `a.1` silently; the user must choose which column is meant.
        check_unique_columns([n for n in first if n], str(path))
    if dropped:
        notes.append(f"dropped {len(dropped)} rows with the wrong number of fields (first: line {dropped[0]})")
    try:
        frame = pd.read_csv(io.StringIO(text), **read_csv_options(delimiter, header))
    except (pd.errors.ParserError, csv.Error) as exc:
        raise DataError(f"not a readable CSV file: {exc}", where=str(path)) from None
    except pd.errors.EmptyDataError:
        raise DataError("the file has no rows", where=str(path)) from None
    if not header:
        frame.columns = [f"column_{i}" for i in range(frame.shape[1])]
    frame = _tidy(frame, str(path))
    detected = {"header": header, "delimiter": delimiter, "encoding": encoding}
    return Collected(frame, str(path), notes=notes, dropped_lines=len(dropped) + blanked, options=detected)


def _drop_ragged_records(text: str, delimiter: str, header: bool) -> tuple[str, list[int], list[str]]:
    """Text without the records whose field count differs from the header's (or the usual one).

    pandas raises on long rows but silently pads short ones, which would train on shifted values.
    Returns the cleaned text, the line numbers of the dropped records, and the first non-blank
    record's stripped fields (the header names, when there is a header).
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    records, lines, blank = [], [], []
    try:
        for record in reader:
            if record:
                records.append(record)
                lines.append(reader.line_num)
                blank.append(not any(field.strip() for field in record))
    except csv.Error:
        return text, [], []  # let pandas report what it cannot read
    widths = [len(r) for r, empty in zip(records, blank, strict=True) if not empty]
    if not widths:
        return text, [], []
    first = [field.strip() for field in records[blank.index(False)]]
    expected = widths[0] if header else max(set(widths), key=widths.count)
    off = [i for i, r in enumerate(records) if len(r) != expected]
    if not off:
        return text, [], first
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    skip = set(off)
    writer.writerows(r for i, r in enumerate(records) if i not in skip)
    # a row of empty fields (",,") carries nothing: dropped without counting it as malformed
    return out.getvalue(), [lines[i] for i in off if not blank[i]], first


def read_csv_options(delimiter: str, header: bool) -> dict:
    """The pandas.read_csv arguments for a sniffed file."""
    return {
        "sep": delimiter,
        "header": 0 if header else None,
        "na_values": NA_VALUES,
        "keep_default_na": True,
        "skipinitialspace": True,
        "skip_blank_lines": True,
        "index_col": False,  # never turn a first column into the index when rows are longer than the header
    }


def _tidy(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Strip text cells (exports pad them) and turn missing-value tokens left behind into NA."""
    frame.columns = [str(c).strip() for c in frame.columns]
    check_unique_columns(list(frame.columns), where)  # 'a' and 'a ' are one name once stripped
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            stripped = frame[column].astype("string").str.strip()
            frame[column] = stripped.mask(stripped.isin(NA_VALUES))
            numbers = pd.to_numeric(frame[column], errors="coerce")
            if numbers.notna().sum() == frame[column].notna().sum():
                frame[column] = numbers  # every present value is a number after stripping
    return frame


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _is_number(value: str) -> bool:
    try:
        float(value.strip())
        return True
    except ValueError:
        return False


def detect_header(sample: str, delimiter: str) -> bool:
    """Whether the first row names columns: it is text where the rows below hold numbers."""
    try:
        rows = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, skipinitialspace=True) if r]
    except csv.Error:
        return True
    if not rows:
        return True
    if len(rows) > 2:
        rows = rows[:-1]  # the sample may cut the last row short
    first, body = rows[0], rows[1:51]
    if not body:
        return True
    missing = {v.lower() for v in NA_VALUES}
    numeric_columns = []
    for j in range(len(first)):
        cells = [r[j].strip() for r in body if len(r) > j and r[j].strip().lower() not in missing]
        if cells and sum(map(_is_number, cells)) >= 0.9 * len(cells):
            numeric_columns.append(j)
    if numeric_columns:
        return any(not _is_number(first[j]) and first[j].strip().lower() not in missing for j in numeric_columns)
    # all text: a header's values are distinct and do not recur in their columns below
    firsts = [v.strip() for v in first]
    return len(set(firsts)) == len(firsts) and all(
        firsts[j] not in {r[j].strip() for r in body if len(r) > j} for j in range(len(firsts))
    )
