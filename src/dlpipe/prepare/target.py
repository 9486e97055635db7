"""The target column: found, cleaned, and encoded (class codes, or standardised values)."""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import pandas as pd

from dlpipe.errors import DataError
from dlpipe.features.category import clean_value, map_distinct
from dlpipe.features.numeric import numeric_share, to_numbers

MAX_CLASSES = 1000


def resolve_target(frame: pd.DataFrame, target: str | int) -> str:
    """The target's column name; an int is a 0-based position (negative counts from the end)."""
    columns = list(frame.columns)
    if isinstance(target, int) or (isinstance(target, str) and target.lstrip("-").isdigit() and target not in columns):
        position = int(target)
        if not -len(columns) <= position < len(columns):
            raise DataError(
                f"target position {position} is outside the {len(columns)} columns",
                where="problem.target",
                fix="positions count from 0; -1 is the last column",
            )
        return columns[position]
    if target in columns:
        return target
    close = difflib.get_close_matches(target, columns, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"columns are: {', '.join(columns[:20])}"
    raise DataError(f"target column {target!r} is not in the data", where="problem.target", fix=hint)


def clean_label(value: Any) -> Any:
    """A class label as a clean string: '>50K.' and ' >50K' both become '>50K'; 1.0 becomes '1'."""
    text = clean_value(value)
    if text is pd.NA:
        return text
    return text.rstrip(".").strip() or text  # exports add a trailing dot to some rows ('>50K.')


def clean_labels(column: pd.Series) -> pd.Series:
    return map_distinct(column, clean_label).astype("string")


def _class_order(classes: list[str]) -> list[str]:
    try:
        return sorted(classes, key=float)
    except ValueError:
        return sorted(classes)


def fit_target(column: pd.Series, task: str) -> dict[str, Any]:
    """Target state from the training split: the classes, or mean and spread for regression."""
    if task == "classification":
        labels = clean_labels(column).dropna()
        classes = _class_order([str(c) for c in labels.unique()])
        return {"classes": classes}
    values = to_numbers(column).dropna().to_numpy()
    std = float(values.std())
    return {"mean": float(values.mean()), "std": std if std > 1e-12 else 1.0}


def check_target(column: pd.Series, task: str, name: str) -> None:
    """Refuse a target that cannot be learned for this task, with a message saying why."""
    present = column.dropna()
    if present.empty:
        raise DataError(f"target column {name!r} has no values", where="problem.target")
    if task == "regression":
        share = numeric_share(present)
        if share < 0.95:
            example = next((v for v in present if pd.isna(pd.to_numeric(v, errors="coerce"))), None)
            raise DataError(
                f"regression target {name!r} is not numeric (e.g. {example!r})",
                where="problem.target",
                fix="use task: classification for labels",
            )
        return
    distinct = clean_labels(present).nunique()
    if distinct < 2:
        raise DataError(
            f"target column {name!r} has one class only ({present.iloc[0]!r}): nothing to learn",
            where="problem.target",
        )
    if distinct > MAX_CLASSES or (distinct > 50 and distinct > 0.5 * len(present) and numeric_share(present) > 0.95):
        raise DataError(
            f"target column {name!r} has {distinct} distinct values: it looks continuous",
            where="problem.task",
            fix="use task: regression",
        )


def encode_target(column: pd.Series, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(encoded target, mask of rows whose target is usable)."""
    if "classes" in state:
        lookup = {c: i for i, c in enumerate(state["classes"])}
        codes = map_distinct(clean_labels(column), lambda v: lookup.get(v, -1) if v is not pd.NA else -1)
        codes = codes.fillna(-1).to_numpy(dtype=np.int64)
        return codes, codes >= 0
    values = to_numbers(column).to_numpy()
    return values.astype(np.float64), np.isfinite(values)
