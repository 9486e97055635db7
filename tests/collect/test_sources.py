"""Every source yields the same table for the same data; bad files give named errors."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dlpipe.collect import collect
from dlpipe.errors import DataError
from dlpipe.spec import BuiltinSource, FileSource, SqlSource

FRAME = pd.DataFrame({"age": [31, 45, 22, 60], "plan": ["pro", "free", "free", "team"], "churned": [0, 1, 0, 1]})


def write(kind: str, folder):
    path = folder / f"data.{kind}"
    if kind == "csv":
        FRAME.to_csv(path, index=False)
    elif kind == "tsv":
        FRAME.to_csv(path, index=False, sep="\t")
    elif kind == "parquet":
        FRAME.to_parquet(path)
    elif kind == "jsonl":
        FRAME.to_json(path, orient="records", lines=True)
    elif kind == "sqlite":
        with sqlite3.connect(path) as conn:
            FRAME.to_sql("customers", conn, index=False)
        return SqlSource(sql="SELECT * FROM customers", url=f"sqlite:///{path}")
    return FileSource(path=str(path))


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet", "jsonl", "sqlite"])
def test_every_source_reads_the_same_table(kind, tmp_path):
    frame = collect(write(kind, tmp_path)).frame
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), FRAME, check_dtype=False)


def test_in_memory_tables():
    pd.testing.assert_frame_equal(collect(FRAME).frame, FRAME)
    pd.testing.assert_frame_equal(collect(pa.Table.from_pandas(FRAME)).frame, FRAME)


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits", "diabetes"])
def test_builtin_sets_have_a_target(name):
    frame = collect(BuiltinSource(builtin=name)).frame
    assert "target" in frame.columns and len(frame) > 100


def test_builtin_classes_carry_names():
    assert set(collect(BuiltinSource(builtin="iris")).frame["target"]) == {"setosa", "versicolor", "virginica"}


def test_csv_missing_tokens_and_padding(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a, b ,c\n1, ?, x \n2,NA, y\n?,3.5,\n")
    frame = collect(FileSource(path=str(path))).frame
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame["a"].isna().tolist() == [False, False, True]
    assert frame["b"].isna().tolist() == [True, True, False]
    assert frame["c"].tolist()[:2] == ["x", "y"] and pd.isna(frame["c"].iloc[2])


def test_headerless_csv_gets_positional_names(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("".join(f"{i},{i * 2.5},{'ab'[i % 2]}\n" for i in range(30)))
    collected = collect(FileSource(path=str(path)))
    assert list(collected.frame.columns) == ["column_0", "column_1", "column_2"]
    assert collected.options["header"] is False and len(collected.frame) == 30


def test_semicolon_latin1_csv(tmp_path):
    path = tmp_path / "d.csv"
    text = "name;value\n" + "".join(f"{w};{i}\n" for i, w in enumerate(["Café", "Über", "naïve"] * 10))
    path.write_bytes(text.encode("latin-1"))
    collected = collect(FileSource(path=str(path)))
    assert collected.options["delimiter"] == ";"
    assert collected.options["encoding"] != "utf-8"
    assert set(collected.frame["name"]) == {"Café", "Über", "naïve"}


def test_rows_with_wrong_field_counts_are_dropped_and_counted(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n7,8\n")
    collected = collect(FileSource(path=str(path)))
    assert collected.dropped_lines == 1 and len(collected.frame) == 2


def test_jsonl_bad_lines_are_dropped_and_counted(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n[1, 2]\n')
    collected = collect(FileSource(path=str(path)))
    assert collected.dropped_lines == 2 and collected.frame["a"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", b"", "empty"),
        ("bad.parquet", b"PAR1 this is not parquet", "Parquet"),
        ("data.xlsx", b"x", "unknown file type"),
    ],
)
def test_bad_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        collect(FileSource(path=str(path)))
    assert message in str(info.value) and name in str(info.value)


def test_bad_sql_names_the_database_and_hides_the_password(tmp_path):
    db = tmp_path / "x.db"
    sqlite3.connect(db).close()
    with pytest.raises(DataError) as info:
        collect(SqlSource(sql="SELECT * FROM nowhere", url=f"sqlite:///{db}"))
    assert "nowhere" in str(info.value)
    with pytest.raises(DataError) as info:
        collect(SqlSource(sql="SELECT 1", url="postgresql+nosuchdriver://user:secret@localhost/db"))
    assert "secret" not in str(info.value)


def test_sql_query_larger_than_one_page(tmp_path):
    db = tmp_path / "big.db"
    with sqlite3.connect(db) as conn:
        pd.DataFrame({"x": np.arange(20_000), "y": np.arange(20_000) % 3}).to_sql("t", conn, index=False)
    frame = collect(SqlSource(sql="SELECT * FROM t WHERE y = 1", url=f"sqlite:///{db}")).frame
    assert len(frame) == 6667 and (frame["y"] == 1).all()


def test_in_memory_tables_are_normalised_like_files():
    frame = collect(pd.DataFrame({0: [1, 2], "y": [0, 1]})).frame
    assert list(frame.columns) == ["0", "y"]
    with pytest.raises(DataError, match="no rows"):
        collect(FRAME.iloc[:0])
    with pytest.raises(DataError, match="pyarrow Table: the source holds no rows"):
        collect(pa.Table.from_pandas(FRAME.iloc[:0]))


def test_in_memory_duplicate_names_are_refused():
    # 1 and "1" are one name once names are text
    with pytest.raises(DataError) as info:
        collect(pd.DataFrame([[1, 2, 3]], columns=[1, "1", "y"]))
    assert "pandas DataFrame: duplicate column name: '1'" in str(info.value)


@pytest.mark.parametrize(("header", "names"), [("a,a ,y", "'a'"), ("a,b,a,b,y", "'a', 'b'"), ("a, a,y", "'a'")])
def test_csv_duplicate_header_names_are_refused(tmp_path, header, names):
    path = tmp_path / "d.csv"
    width = header.count(",") + 1
    path.write_text(header + "\n" + "".join(",".join(str(i + j) for j in range(width)) + "\n" for i in range(5)))
    with pytest.raises(DataError) as info:
        collect(FileSource(path=str(path)))
    assert f"{path}: duplicate column name" in str(info.value) and names in str(info.value)


def test_csv_blank_header_names_are_not_duplicates(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,,,y\n1,2,3,4\n5,6,7,8\n")
    assert len(collect(FileSource(path=str(path))).frame.columns) == 4


def test_missing_sqlite_file_is_not_created(tmp_path):
    db = tmp_path / "missing.db"
    with pytest.raises(DataError) as info:
        collect(SqlSource(sql="SELECT * FROM t", url=f"sqlite:///{db}"))
    assert str(info.value).startswith(f"{db}: database file not found")
    assert not db.exists()


def test_sqlite_in_memory_needs_no_file():
    assert collect(SqlSource(sql="SELECT 1 AS a", url="sqlite://")).frame["a"].tolist() == [1]


@pytest.mark.parametrize("name", ["d.csv", "d.jsonl"])
def test_unreadable_file_names_the_file(tmp_path, monkeypatch, name):
    path = tmp_path / name
    path.write_text("a,b\n1,2\n")

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    # Tests may run as root, which chmod cannot lock out.
    monkeypatch.setattr(type(path), "read_bytes", refuse)
    with pytest.raises(DataError) as info:
        collect(FileSource(path=str(path)))
    assert str(info.value) == f"{path}: cannot read the file: Permission denied"


def test_sqlite_reads_in_batches(tmp_path):
    from dlpipe.collect.sql import count_sql_rows, sql_batches

    db = tmp_path / "big.db"
    with sqlite3.connect(db) as conn:
        pd.DataFrame({"x": np.arange(2_500), "y": np.arange(2_500) % 3}).to_sql("t", conn, index=False)
    source = SqlSource(sql="SELECT * FROM t ORDER BY x", url=f"sqlite:///{db}")
    batches = list(sql_batches(source, 1_000))
    assert [len(b) for b in batches] == [1_000, 1_000, 500]
    assert pd.concat(batches)["x"].tolist() == list(range(2_500)) and count_sql_rows(source) == 2_500
    empty = list(sql_batches(SqlSource(sql="SELECT * FROM t WHERE x < 0", url=f"sqlite:///{db}"), 1_000))
    assert len(empty) == 1 and list(empty[0].columns) == ["x", "y"] and empty[0].empty
