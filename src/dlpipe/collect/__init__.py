"""Collection: every source becomes one pandas table, with notes on what was read and what was dropped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlpipe.errors import DataError


@dataclass
class Collected:
    """A table read from a source, plus what happened on the way (for profile.json)."""

    frame: pd.DataFrame
    origin: str
    notes: list[str] = field(default_factory=list)
    dropped_lines: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # detected options, e.g. header, delimiter
    skipped: list[dict[str, Any]] = field(default_factory=list)  # files not read: {file, reason, ...}


def collect(source: Any, media: Collection[str] = ()) -> Collected:
    """Read a source: a path, a File/Sql/Builtin/FolderSource, or a pandas/pyarrow table.

    `media` names columns declared (or trained) as image or audio: their paths are resolved
    against the table's folder and kept inside it whatever their extensions.
    """
    from dlpipe.spec import BuiltinSource, FileSource, FolderSource, SqlSource

    if isinstance(source, str | Path):
        source = FileSource(path=str(source))
    if isinstance(source, pd.DataFrame):
        collected = Collected(source.copy(), "a pandas DataFrame")
    elif type(source).__module__.startswith("pyarrow"):
        collected = Collected(source.to_pandas(), "a pyarrow Table")
    elif isinstance(source, FileSource):
        from dlpipe.collect.files import read_file
        from dlpipe.collect.folders import resolve_paths

        collected = resolve_paths(read_file(source), Path(source.path).parent, media)
    elif isinstance(source, FolderSource):
        from dlpipe.collect.folders import read_folder, resolve_paths

        root = Path(source.path)
        collected = resolve_paths(read_folder(source), root.parent if root.is_file() else root, media)
    elif isinstance(source, SqlSource):
        from dlpipe.collect.sql import read_sql

        collected = read_sql(source)
    elif isinstance(source, BuiltinSource):
        from dlpipe.collect.builtin import read_builtin

        collected = read_builtin(source.builtin)
    else:
        raise DataError(f"cannot read a source of type {type(source).__name__}")
    return _normalise(collected)


def _normalise(collected: Collected) -> Collected:
    """The same checks for every source: text column names, each once, and at least one row."""
    collected.frame.columns = [str(c) for c in collected.frame.columns]
    check_unique_columns(list(collected.frame.columns), collected.origin)
    if collected.frame.empty:
        raise DataError("the source holds no rows", where=collected.origin)
    return collected


def check_unique_columns(names: list[str], where: str) -> None:
    """Refuse a table naming a column twice: a feature or target name would be ambiguous."""
    duplicated = [name for name, count in Counter(names).items() if count > 1]
    if duplicated:
        raise DataError(
            f"duplicate column name{'s' if len(duplicated) > 1 else ''}: {', '.join(map(repr, duplicated))}",
            where=where,
            fix="give every column its own name",
        )
