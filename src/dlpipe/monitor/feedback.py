"""Feedback: ground-truth labels for predictions made earlier, joined on the prediction's id.

Labels are checked against the model before they are stored: a class the model knows (cleaned as
training cleaned them, so ' >50K.' is '>50K'), or a finite number for a regression model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from dlpipe.monitor.store import MAX_ID

MAX_LABELS = 100_000  # labels in one request


def check_label(value: Any, classes: list[str] | None) -> Any:
    """The label as stored: a known class name, or a float. ValueError says what is wrong."""
    if classes is None:
        if isinstance(value, bool) or value is None:
            raise ValueError(f"label must be a number; received {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"label must be a number; received {str(value)[:40]!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"label must be a finite number; received {value!r}")
        return number
    from dlpipe.prepare.target import clean_label

    if isinstance(value, dict | list) or value is None:
        raise ValueError(f"label must be one of the classes {classes[:10]}; received {value!r}")
    label = clean_label(value)
    if label is pd.NA:
        raise ValueError(f"label is empty; send one of the classes {classes[:10]}")
    if label not in classes:
        raise ValueError(f"unknown class {str(value)[:40]!r}; the model's classes are {classes[:10]}")
    return label


def check_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        raise ValueError(f"id must be a non-empty string of at most {MAX_ID} characters; received {str(value)[:40]!r}")
    return value


def parse_feedback(doc: Any, classes: list[str] | None) -> list[tuple[str, Any]]:
    """`{"id": ..., "label": ...}` or a list of them, checked; a mistake is a RequestError naming the item."""
    from dlpipe.serve.inputs import RequestError

    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise RequestError('send {"id": ..., "label": ...} or a non-empty list of them')
    if len(items) > MAX_LABELS:
        raise RequestError(f"{len(items)} labels in one request; at most {MAX_LABELS}", status=413)
    out = []
    for i, item in enumerate(items):
        where = f"feedback[{i}]" if isinstance(doc, list) else "feedback"
        if not isinstance(item, dict) or set(item) != {"id", "label"}:
            raise RequestError(f'{where} must be {{"id": ..., "label": ...}} and nothing else')
        try:
            out.append((check_id(item["id"]), check_label(item["label"], classes)))
        except ValueError as exc:
            raise RequestError(f"{where}: {exc}") from None
    return out


def read_labels(path: str | Path, classes: list[str] | None) -> list[tuple[str, Any]]:
    """A CSV file of `id,label` rows, checked; a mistake is a DataError naming the file and line."""
    from dlpipe.errors import DataError

    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError("file not found", where=str(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable CSV file: {str(exc).splitlines()[0]}", where=str(path)) from None
    missing = [c for c in ("id", "label") if c not in frame.columns]
    if missing:
        raise DataError(
            f"no column {missing[0]!r} (columns: {', '.join(map(str, frame.columns[:10]))})",
            where=str(path),
            fix="the file needs the columns id and label",
        )
    out = []
    for line, (row_id, label) in enumerate(zip(frame["id"], frame["label"], strict=True), start=2):
        try:
            out.append((check_id(row_id.strip()), check_label(label, classes)))
        except ValueError as exc:
            raise DataError(str(exc), where=f"{path}:{line}") from None
    return out
