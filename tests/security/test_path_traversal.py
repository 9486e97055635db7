"""Sources and requests reach no file outside the folders they name. The rule: every path a data file
holds, relative or absolute, must resolve (links followed) inside the table's own folder; a folder
source reads only files whose real location is inside it; the server takes file content, never a path.
Existing cases (`../x`, `/etc/...` in a table) are in tests/collect/test_folders.py; these add links."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from dlpipe.collect import collect
from dlpipe.collect.folders import read_unlabelled
from dlpipe.serve.inputs import Feature, RequestError, frame_from_records
from dlpipe.spec import FileSource, FolderSource


def png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (4, 4), 128).save(path)
    return path


@pytest.fixture
def layout(tmp_path) -> tuple[Path, Path]:
    """A data folder with two classes of real images, and a private folder of images beside it."""
    data, private = tmp_path / "data", tmp_path / "private"
    for label in ("a", "b"):
        for i in range(3):
            png(data / label / f"{i}.png")
    for i in range(2):
        png(private / f"secret{i}.png")
    return data, private


def test_a_folder_source_reads_no_link_out_of_it(layout):
    data, private = layout
    (data / "a" / "link.png").symlink_to(private / "secret0.png")  # a file linked out
    (data / "c").symlink_to(private, target_is_directory=True)  # a whole class folder linked out
    (data / "b" / "deeper").symlink_to(private, target_is_directory=True)  # a subfolder linked out
    got = collect(FolderSource(images=str(data)))
    assert all(str(private) not in p and Path(p).resolve().is_relative_to(data) for p in got.frame["image"])
    assert len(got.frame) == 6
    refused = {Path(s["file"]).name for s in got.skipped if s["reason"] == "outside the data folder"}
    assert {"link.png", "secret0.png", "secret1.png"} <= refused
    unlabelled = read_unlabelled(data, "image", "photo")  # `dlpipe predict MODEL FOLDER`
    assert len(unlabelled.frame) == 6 and all(str(private) not in p for p in unlabelled.frame["photo"])


def test_a_table_of_paths_reaches_nothing_outside_its_folder(layout):
    data, private = layout
    (data / "link.png").symlink_to(private / "secret0.png")
    inside = str((data / "a" / "0.png").resolve())
    paths = [
        "a/0.png",  # relative, inside: read
        inside,  # absolute, inside: read
        "a/../b/1.png",  # stays inside: read
        "../private/secret0.png",
        "a/../../private/secret1.png",
        str(private / "secret0.png"),  # absolute, outside
        "link.png",  # a link inside pointing outside
        "/etc/passwd.png",
        "../" * 20 + "etc/passwd.png",
    ]
    pd.DataFrame({"photo": paths, "label": ["a", "b", "a"] * 3}).to_csv(data / "index.csv", index=False)
    for media in ((), {"photo"}):  # a column recognised by its values, and one declared an image
        got = collect(FileSource(path=str(data / "index.csv")), media=media)
        photos = got.frame["photo"].tolist()
        assert photos[:3] == [inside, inside, str((data / "b" / "1.png").resolve())]
        assert photos[3:] == [None] * 6
        assert [s["row"] for s in got.skipped] == list(range(3, 9))
        assert {s["reason"] for s in got.skipped} == {"outside the data folder"}


def test_a_request_carries_content_never_a_path(layout):
    data, _ = layout
    features = [Feature("photo", "image")]
    for path in (str(data / "a" / "0.png"), "a/0.png", "/etc/passwd", "file:///etc/passwd"):
        with pytest.raises(RequestError, match="not valid base64"):
            frame_from_records([{"photo": path}], features)
    # a path made only of base64 letters decodes to bytes, which are then an (unreadable) image, not a file
    frame = frame_from_records([{"photo": "etc/passwd/AAAAA"}], features)
    assert isinstance(frame["photo"][0], bytes)
