"""Folders of files: images, audio or text, one subfolder per class (the ImageFolder convention).

A folder becomes a table of (file column, `label`): absolute paths for images and audio (decoded
later, by their feature types, with caching), the decoded content for text. A table (CSV,
Parquet...) whose column holds paths to media files has those paths resolved against the table's
own folder, and a path that would leave that folder is refused: a data file must not be able to
point the pipeline at `/etc/passwd` or `../../secrets`.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd

from dlpipe.collect import Collected
from dlpipe.errors import DataError

TEXT_EXTENSIONS = (".txt", ".text", ".md")
COLUMNS = {"images": "image", "audio": "audio", "text": "text"}  # source kind -> its column, named for its type
MEDIA_TYPES = ("image", "audio")  # feature types whose values are paths to files


def extensions(kind: str) -> tuple[str, ...]:
    from dlpipe.features.audio import AUDIO_EXTENSIONS
    from dlpipe.features.image import IMAGE_EXTENSIONS

    return {"images": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS, "text": TEXT_EXTENSIONS}[kind]


def read_folder(src: Any) -> Collected:
    """Read a FolderSource: a class-per-subfolder tree, or a table with a column of paths."""
    from dlpipe.collect.files import read_file
    from dlpipe.spec import FileSource

    root = Path(src.path)
    if not root.exists():
        raise DataError("folder not found", where=str(root), fix="check data.source in the pipeline file")
    if root.is_file():
        return read_file(FileSource(path=str(root)))
    kind = src.kind
    wanted = extensions(kind)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"no class subfolders: a {kind} folder holds one subfolder per class",
            where=str(root),
            fix=f"put the files in {root}/<class name>/, or pass a table with a column of paths",
        )
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    other = 0
    for folder in classes:
        found, ignored = read_files(folder, kind, root, skipped)
        rows += [{**row, "label": folder.name} for row in found]
        other += ignored
    if not rows:
        raise DataError(f"no {kind} files ({', '.join(wanted)}) in the class subfolders", where=str(root))
    notes = [f"{len(rows)} {COLUMNS[kind]} files in {len(classes)} class folders"]
    if other:
        notes.append(f"ignored {other} files without a {kind} extension")
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable files (listed in profile.json)")
    return Collected(pd.DataFrame(rows), str(root), notes=notes, skipped=skipped)


def read_files(
    folder: Path, kind: str, root: Path, skipped: list[dict[str, Any]], name_texts: bool = False
) -> tuple[list[dict[str, str]], int]:
    """One row per file of `kind` below `folder` (absolute path, or the text for text files), and
    how many files of another kind were passed over; unusable files go to `skipped`.

    `name_texts` adds a `file` column to text rows (for predictions; in training a file name may
    give the class away, so it is left out)."""
    column, wanted, base = COLUMNS[kind], extensions(kind), root.resolve()
    rows, other = [], 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() not in wanted:
            other += 1
            continue
        if base not in path.resolve().parents:  # a symbolic link out of the data folder
            skipped.append({"file": str(path), "reason": "outside the data folder"})
            continue
        if kind == "text":
            content, reason = _read_text(path)
            if reason:
                skipped.append({"file": str(path), "reason": reason})
                continue
            rows.append({column: content, **({"file": str(path.relative_to(root))} if name_texts else {})})
        else:
            rows.append({column: str(path.resolve())})
    return rows, other


def read_unlabelled(root: Path, feature_type: str, column: str) -> Collected:
    """Every file for `feature_type` (image, audio or text) below `root`, for prediction: one row
    each, in the model's `column`."""
    kind = next(k for k, t in COLUMNS.items() if t == feature_type)
    skipped: list[dict[str, Any]] = []
    rows, _ = read_files(root, kind, root, skipped, name_texts=True)
    if not rows:
        raise DataError(f"no {kind} files ({', '.join(extensions(kind))}) in the folder", where=str(root))
    frame = pd.DataFrame(rows).rename(columns={feature_type: column})
    return Collected(frame, str(root), notes=[f"{len(rows)} {feature_type} files"], skipped=skipped)


def _read_text(path: Path) -> tuple[str, str]:
    """(content, '') or ('', why not); the encoding is detected as for CSV files."""
    from dlpipe.collect.files import decode_text

    try:
        raw = path.read_bytes()
    except OSError as exc:
        return "", f"cannot read the file: {exc.strerror or exc}"
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "", "binary content, not text"
    text = decode_text(raw, None, path)[0].strip()
    return (text, "") if text else ("", "empty file")


def resolve_paths(collected: Collected, root: Path, media: Collection[str] = ()) -> Collected:
    """Make media paths in a table absolute, relative to `root`; refuse those that leave it.

    Columns in `media` (declared image or audio) are resolved whatever their values look like;
    others when nearly all their values are paths to media files.
    """
    from dlpipe.features import file_kind

    frame = collected.frame
    base = root.resolve()
    for name in frame.columns:
        present = frame[name].dropna()
        if present.empty or (name not in media and file_kind(present) is None):
            continue
        resolved, outside = [], []
        for i, value in enumerate(frame[name]):
            if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
                resolved.append(None)
                continue
            target = (base / str(value).strip()).resolve()
            if target != base and base not in target.parents:
                outside.append(i)
                collected.skipped.append(
                    {"file": str(value), "column": name, "row": i, "reason": "outside the data folder"}
                )
                resolved.append(None)
            else:
                resolved.append(str(target))
        frame[name] = pd.Series(resolved, index=frame.index, dtype=object)
        if outside:
            collected.notes.append(
                f"column {name!r}: {len(outside)} paths lead outside the data folder {base} and were not read"
            )
    return collected
