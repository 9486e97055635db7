"""Random bytes in a data file give a table or a named DataError, never a traceback; malformed files
(cut Parquet, garbage, mixed encodings, a 10 MB line, broken media) through the pipeline too."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import dlpipe
from dlpipe.collect import collect
from dlpipe.errors import DataError
from dlpipe.pipeline import Pipeline
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


# --- malformed files through the pipeline: a named DataError naming the file, or the bad rows
# dropped, counted and their first line reported (as README "Sources" documents) --------------------

RNG = np.random.default_rng(0)
FRAME = pd.DataFrame(
    {"a": RNG.normal(size=60).round(3), "b": RNG.choice(["x", "yé", "z"], 60), "y": RNG.choice(["no", "yes"], 60)}
)
LINES = FRAME.to_csv(index=False).encode().split(b"\n")
JSON_LINES = FRAME.to_json(orient="records", lines=True, force_ascii=False).encode().split(b"\n")


def parquet_bytes() -> bytes:
    out = io.BytesIO()
    FRAME.to_parquet(out)
    return out.getvalue()


def with_line(lines: list[bytes], at: int, line: bytes) -> bytes:
    return b"\n".join([*lines[:at], line, *lines[at:]])


REFUSED = {  # file -> what the DataError says
    **{f"cut{share}.parquet": "not a readable Parquet file" for share in (0, 10, 50, 99)},
    "header.csv": "no rows",
    "empty.csv": "the file is empty",
}
DROPPED = {  # file -> (rows kept, the note naming the first bad line)
    "nul.csv": (60, "dropped 1 lines holding NUL bytes (first: line 11)"),
    "garbage.csv": (60, "rows with the wrong number of fields (first: line 21)"),
    "ragged.csv": (60, "dropped 1 rows with the wrong number of fields (first: line 41)"),
    "broken.jsonl": (60, "dropped 1 lines that are not JSON objects (first: line 13)"),
    "mixed.csv": (61, "1 lines not UTF-8, read as cp1252 (first: line 31)"),
    "utf16.csv": (60, "read as utf_16 (not UTF-8)"),
    "long.csv": (61, None),  # a 10 MB cell is a (long) category value
}


def malformed(name: str) -> bytes:
    if name.endswith(".parquet"):
        whole = parquet_bytes()
        return whole[: len(whole) * int(name[3:-8]) // 100 or 4]
    garbage = bytes(RNG.integers(0, 256, 300, dtype=np.uint8)).replace(b"\x00", b"\x01")
    return {
        "header.csv": LINES[0] + b"\n",
        "empty.csv": b"",
        "nul.csv": with_line(LINES, 10, b"1.0,x\x00\x00,no"),
        "garbage.csv": with_line(LINES, 20, garbage),
        "ragged.csv": with_line(LINES, 40, b"1.0,x,no,extra,more"),
        "broken.jsonl": with_line(JSON_LINES, 12, b'{"a": 1.0, "b": "x", "y": '),
        "mixed.csv": with_line(LINES, 30, "2.0,café,no".encode("cp1252")),
        "utf16.csv": b"\n".join(LINES).decode().encode("utf-16"),
        "long.csv": with_line(LINES, 5, b"1.0," + b"w" * 10_000_000 + b",yes"),
    }[name]


def prepared(path: Path):
    config = {"name": "fuzz", "problem": {"task": "classification", "target": "y"}, "data": {"source": str(path)}}
    return Pipeline.from_dict(config).prepare()


@pytest.mark.parametrize("name", REFUSED)
def test_an_unusable_file_is_a_data_error_naming_it(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(malformed(name))
    with pytest.raises(DataError, match=REFUSED[name]) as caught:
        prepared(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("name", DROPPED)
def test_bad_lines_are_dropped_counted_and_their_line_reported(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(malformed(name))
    profile = prepared(path).profile
    rows, note = DROPPED[name]
    assert profile["rows"] == rows
    assert set(FRAME["b"]) <= set(profile["columns"]["b"]["top"])  # no accent garbled by a stray line
    if note:
        assert any(note in n for n in profile["notes"]), profile["notes"]
    if "dropped" in (note or ""):
        assert profile["dropped"]["rows"][0]["count"] >= 1


def test_a_broken_image_and_a_cut_recording_are_dropped_and_listed(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "images" / label / f"{i}.png")
    (tmp_path / "images" / "cat" / "fake.png").write_bytes(b"this is no image")
    config = {"name": "fuzz", "problem": {"task": "classification", "target": "label"}}
    profile = Pipeline.from_dict({**config, "data": {"source": {"images": str(tmp_path / "images")}}}).prepare().profile
    assert [f["value"] for f in profile["dropped"]["files"]] == [str(tmp_path / "images" / "cat" / "fake.png")]

    import soundfile

    for label in ("one", "two"):
        (tmp_path / "audio" / label).mkdir(parents=True)
        for i in range(6):
            soundfile.write(tmp_path / "audio" / label / f"{i}.wav", RNG.normal(0, 0.1, 800), 8000)
    whole = (tmp_path / "audio" / "one" / "0.wav").read_bytes()
    (tmp_path / "audio" / "one" / "cut.wav").write_bytes(whole[:30])  # inside the header
    profile = Pipeline.from_dict({**config, "data": {"source": {"audio": str(tmp_path / "audio")}}}).prepare().profile
    assert [f["value"] for f in profile["dropped"]["files"]] == [str(tmp_path / "audio" / "one" / "cut.wav")]


@pytest.mark.parametrize("name", ["cut50.parquet", "header.csv"])
def test_dlpipe_validate_names_the_bad_file_and_exits_2(name, tmp_path):
    (tmp_path / name).write_bytes(malformed(name))
    (tmp_path / "pipeline.yaml").write_text(
        f"name: fuzz\nproblem: {{task: classification, target: y}}\ndata: {{source: {name}}}\n"
    )
    done = dlpipe("validate", "pipeline.yaml", cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert name in done.stderr and REFUSED[name] in done.stderr
