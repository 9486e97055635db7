"""Collection: every source becomes one pandas table, with notes on what was read and what was dropped."""

from __future__ import annotations

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


def collect(source: Any) -> Collected:
    """Read a source: a path, a FileSource/SqlSource/BuiltinSource, or a pandas/pyarrow table."""
    from dlpipe.spec import BuiltinSource, FileSource, SqlSource

    if isinstance(source, pd.DataFrame):
        return Collected(source.copy(), "a pandas DataFrame")
    if type(source).__module__.startswith("pyarrow"):
        return Collected(source.to_pandas(), "a pyarrow Table")
    if isinstance(source, str | Path):
        source = FileSource(path=str(source))
    if isinstance(source, FileSource):
        from dlpipe.collect.files import read_file

        collected = read_file(source)
    elif isinstance(source, SqlSource):
        from dlpipe.collect.sql import read_sql

        collected = read_sql(source)
    elif isinstance(source, BuiltinSource):
        from dlpipe.collect.builtin import read_builtin

        collected = read_builtin(source.builtin)
    else:
        raise DataError(f"cannot read a source of type {type(source).__name__}")
    if collected.frame.empty:
        raise DataError("the source holds no rows", where=collected.origin)
    collected.frame.columns = [str(c) for c in collected.frame.columns]
    return collected
