"""Streamed sources give, batch by batch, the table the in-memory reader gives; the choice to stream."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from dlpipe.collect import collect, stream
from dlpipe.collect.stream import open_stream, should_stream
from dlpipe.errors import ConfigError, DataError
from dlpipe.spec import Data, FileSource, SqlSource, validate_spec

ROWS = 40_000


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    out = pd.DataFrame(
        {
            "amount": np.round(rng.normal(50, 10, ROWS), 3),
            "plan": rng.choice(["free", "pro", "team"], ROWS),
            "count": rng.integers(0, 9, ROWS),
        }
    )
    out.loc[::97, "amount"] = np.nan
    return out


def write(kind, frame, folder):
    path = folder / f"data.{kind}"
    if kind == "parquet":
        frame.to_parquet(path, row_group_size=7_000)
    elif kind == "sqlite":
        with sqlite3.connect(path) as conn:
            frame.to_sql("t", conn, index=False)
        return SqlSource(sql="SELECT * FROM t", url=f"sqlite:///{path}")
    else:
        frame.to_csv(path, index=False, sep="\t" if kind == "tsv" else ",")
    return FileSource(path=str(path))


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet", "sqlite"])
def test_batches_join_to_the_in_memory_table(kind, frame, tmp_path):
    source = write(kind, frame, tmp_path)
    opened = open_stream(source, 5_000)
    batches = list(opened.batches())
    assert len(batches) > 1 and max(len(b) for b in batches) <= (5_000 if kind in ("parquet", "sqlite") else ROWS // 2)
    joined = pd.concat(batches, ignore_index=True)
    whole = collect(source).frame
    assert list(joined.columns) == list(whole.columns) and len(joined) == ROWS
    np.testing.assert_allclose(joined["amount"].astype(float), whole["amount"].astype(float))
    assert joined["plan"].tolist() == whole["plan"].tolist()
    assert opened.rows == (None if kind in ("csv", "tsv") else ROWS)
    assert len(list(opened.batches())) == len(batches)  # read again from the start


def test_csv_bad_rows_are_dropped_and_named_as_in_memory(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(20)) + "1,2,3\n7,8\nx\n")
    opened = open_stream(FileSource(path=str(path)), 100)
    assert len(pd.concat(opened.batches())) == 21 and opened.dropped_lines == 2
    assert opened.notes == collect(FileSource(path=str(path))).notes
    list(opened.batches())
    assert len(opened.notes) == 1  # a second read does not repeat the note


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: not a readable Parquet file"):
        open_stream(FileSource(path=str(bad)), 100)
    with pytest.raises(DataError, match="file not found"):
        open_stream(FileSource(path=str(tmp_path / "none.csv")), 100)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        open_stream(FileSource(path=str(tmp_path / "empty.csv")), 100)


def test_streaming_is_chosen_by_size_or_setting(frame, tmp_path, monkeypatch):
    parquet = write("parquet", frame, tmp_path)
    assert not should_stream(Data(source=parquet), parquet)
    assert should_stream(Data(source=parquet, streaming="on"), parquet)
    monkeypatch.setattr(stream, "STREAM_ROWS", ROWS - 1)
    assert should_stream(Data(source=parquet), parquet)
    assert not should_stream(Data(source=parquet, streaming="off"), parquet)
    sql = write("sqlite", frame, tmp_path)
    assert should_stream(Data(source=sql), sql)
    monkeypatch.setattr(stream, "STREAM_CSV_BYTES", 1_000)
    csv_source = write("csv", frame, tmp_path)
    assert should_stream(Data(source=csv_source.path), csv_source.path)
    jsonl = str(tmp_path / "d.jsonl")
    assert not should_stream(Data(source=jsonl), jsonl)
    with pytest.raises(ConfigError, match="streaming reads CSV, TSV, Parquet and SQL sources only"):
        should_stream(Data(source=jsonl, streaming="on"), jsonl)
    with pytest.raises(ConfigError, match="separate validation and test"):
        should_stream(Data(source=parquet, test=parquet, streaming="on"), parquet)


def test_streaming_key_is_checked_with_a_suggestion():
    config = {"name": "x", "problem": {"task": "regression", "target": "y"}, "data": {"source": "d.csv"}}
    with pytest.raises(ConfigError, match="did you mean 'streaming'"):
        validate_spec({**config, "data": {"source": "d.csv", "streamin": "on"}})
    with pytest.raises(ConfigError, match=r"data\.streaming"):
        validate_spec({**config, "data": {"source": "d.csv", "streaming": "always"}})
    assert validate_spec(config).data.streaming == "auto"
