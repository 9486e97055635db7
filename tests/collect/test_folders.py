"""Folder sources (a subfolder per class) and media paths in tables, resolved inside the data folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dlpipe.collect import collect
from dlpipe.define import init_pipeline
from dlpipe.errors import DataError
from dlpipe.spec import FileSource, FolderSource


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_image_folder_becomes_absolute_paths_and_labels(tmp_path):
    for label in ("cat", "dog"):
        for i in range(3):
            _touch(tmp_path / "pets" / label / f"{i}.png")
    _touch(tmp_path / "pets" / "cat" / "notes.csv")
    _touch(tmp_path / "pets" / ".hidden" / "x.png")
    got = collect(FolderSource(images=str(tmp_path / "pets")))
    assert sorted(got.frame.columns) == ["image", "label"]
    assert got.frame["label"].value_counts().to_dict() == {"cat": 3, "dog": 3}
    assert all(Path(p).is_absolute() and Path(p).exists() for p in got.frame["image"])
    assert any("ignored 1 files" in n for n in got.notes)


def test_text_folder_reads_contents_in_their_encoding_and_lists_unusable_files(tmp_path):
    _touch(tmp_path / "t" / "pos" / "a.txt", "café crème, très bon".encode("latin-1"))
    _touch(tmp_path / "t" / "pos" / "b.txt", "déjà vu — great".encode())
    _touch(tmp_path / "t" / "neg" / "c.txt", b"awful")
    _touch(tmp_path / "t" / "neg" / "empty.txt", b"   ")
    _touch(tmp_path / "t" / "neg" / "blob.txt", b"\x00\x01\x02binary")
    secret = _touch(tmp_path / "secret.txt", b"password")
    (tmp_path / "t" / "neg" / "link.txt").symlink_to(secret)
    got = collect(FolderSource(text=str(tmp_path / "t")))
    texts = set(got.frame["text"])
    assert "café crème, très bon" in texts and "déjà vu — great" in texts
    assert len(got.frame) == 3
    reasons = {Path(s["file"]).name: s["reason"] for s in got.skipped}
    assert reasons == {
        "empty.txt": "empty file",
        "blob.txt": "binary content, not text",
        "link.txt": "outside the data folder",
    }
    assert "password" not in texts


def test_folder_without_class_subfolders_is_a_clear_error(tmp_path):
    _touch(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="class subfolders"):
        collect(FolderSource(images=str(tmp_path / "flat")))
    with pytest.raises(DataError, match="not found"):
        collect(FolderSource(audio=str(tmp_path / "nowhere")))


def test_table_paths_resolve_against_the_table_folder_and_never_escape_it(tmp_path):
    data = tmp_path / "data"
    _touch(data / "img" / "a.png")
    _touch(tmp_path / "secret.png")
    table = data / "index.csv"
    pd.DataFrame(
        {
            "photo": ["img/a.png", "img/missing.png", "../secret.png", "/etc/passwd.png", None] * 4,
            "label": ["x", "y"] * 10,
        }
    ).to_csv(table, index=False)
    got = collect(FileSource(path=str(table)))
    photos = got.frame["photo"]
    assert photos[0] == str((data / "img" / "a.png").resolve())
    assert photos[1] == str((data / "img" / "missing.png").resolve())  # missing files are the type's business
    assert photos[2] is None and photos[3] is None  # outside the data folder: not read
    assert {s["reason"] for s in got.skipped} == {"outside the data folder"}
    assert len(got.skipped) == 8
    assert any("outside the data folder" in n for n in got.notes)


def test_a_folder_source_may_name_a_table_of_paths(tmp_path):
    _touch(tmp_path / "clips" / "a.wav")
    pd.DataFrame({"clip": ["clips/a.wav"] * 3, "y": [1, 2, 3]}).to_csv(tmp_path / "t.csv", index=False)
    got = collect(FolderSource(audio=str(tmp_path / "t.csv")))
    assert got.frame["clip"][0] == str((tmp_path / "clips" / "a.wav").resolve())


def test_init_recognises_a_folder_of_classes(tmp_path):
    for label in ("zero", "one"):
        for i in range(6):
            _touch(tmp_path / "digits" / label / f"{i}.png")
    text = init_pipeline(tmp_path / "digits", None, tmp_path / "pipeline.yaml")
    assert "source: {images: digits}" in text
    assert "name: digits" in text
    assert "target: label" in text
    assert "image: {type: image}" in text


def test_init_names_a_generic_data_folder_after_its_parent(tmp_path):
    for label in ("a", "b"):
        _touch(tmp_path / "birds" / "data" / label / "1.jpg")
    text = init_pipeline(tmp_path / "birds" / "data", None, tmp_path / "pipeline.yaml")
    assert "name: birds" in text


def test_a_declared_media_column_is_resolved_and_contained_whatever_its_extensions(tmp_path):
    data = tmp_path / "data"
    _touch(data / "img" / "a")  # no extension: the guess alone would leave the column alone
    _touch(tmp_path / "outside.png")
    rows = ["img/a", "img/b", "../outside.png", "notes", "img/c"] * 4
    pd.DataFrame({"photo": rows, "label": ["x", "y"] * 10}).to_csv(data / "index.csv", index=False)
    guessed = collect(FileSource(path=str(data / "index.csv")))
    assert guessed.frame["photo"][0] == "img/a"  # not a media column by its looks
    declared = collect(FileSource(path=str(data / "index.csv")), media={"photo"})
    assert declared.frame["photo"][0] == str((data / "img" / "a").resolve())
    assert declared.frame["photo"][2] is None
    assert {s["reason"] for s in declared.skipped} == {"outside the data folder"}
