"""Random bytes in a data file give a table or a named DataError, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlpipe.collect import collect
from dlpipe.errors import DataError
from dlpipe.spec import FileSource

CSV_ALPHABET = st.sampled_from([*'ab1.5,;\t"?\n \r|é', "NA", "1e3", "\x00", "\xff"])


def read(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(data)
        try:
            collected = collect(FileSource(path=str(path)))
        except DataError as exc:
            assert str(path) in str(exc)
        else:
            assert len(collected.frame) > 0


@pytest.mark.filterwarnings("error::pandas.errors.ParserWarning")  # a silently truncated row is a bug
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(CSV_ALPHABET, max_size=200).map("".join))
def test_csv_like_text(text):
    read(".csv", text.encode("utf-8", "surrogatepass"))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=300), st.sampled_from([".csv", ".tsv", ".parquet", ".jsonl"]))
def test_binary_garbage(data, suffix):
    read(suffix, data)
