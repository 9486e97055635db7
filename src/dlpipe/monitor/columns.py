"""The columns monitoring compares: the model's inputs as logged and as in the reference, made
comparable (categories cleaned as training cleaned them, dates as numbers), and the outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dlpipe.monitor.embeddings import EMBEDDED

NUMERIC = ("numeric", "datetime")
CATEGORICAL = ("category", "binary")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the feature type

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC


Values = tuple[np.ndarray, np.ndarray, int]


def values(column: Column, raw: pd.Series) -> Values:
    """(comparable values without the missing ones, a mask of missing rows, values of the wrong kind).
    Text, image and audio values are compared on embeddings instead: only their missing rows count."""
    if column.type in EMBEDDED:
        missing = raw.isna().to_numpy() if len(raw) else np.zeros(0, bool)
        return np.zeros(0), missing, 0
    if column.type == "datetime":
        parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
        missing = parsed.isna().to_numpy()
        wrong = int((missing & raw.notna().to_numpy()).sum())
        seconds = parsed[~missing].astype("int64").to_numpy() / 1e9
        return seconds.astype(float), missing, wrong
    if column.type == "numeric":
        numbers = pd.to_numeric(raw, errors="coerce")
        numbers = numbers.where(np.isfinite(numbers))  # inf, as in training, is no number (and counts wrong)
        missing = numbers.isna().to_numpy()
        wrong = int((missing & raw.notna().to_numpy()).sum())
        return numbers[~missing].to_numpy(dtype=float), missing, wrong
    from dlpipe.features.category import clean_value

    # clean each distinct value once (as training cleaned them), not each row: 40x faster on 100k rows
    codes, uniques = pd.factorize(raw.to_numpy(dtype=object), use_na_sentinel=True)
    cleaned = [clean_value(json.dumps(v) if isinstance(v, dict | list) else v) for v in uniques]
    mapped = np.array([None if c is pd.NA else c for c in cleaned] + [None], dtype=object)[codes]
    missing = pd.isna(mapped)
    return mapped[~missing].astype(str), missing, 0


def current_frame(rows: pd.DataFrame, columns: list[Column]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The logged inputs as a table with one column per feature, and how many rows lacked each."""
    records = [json.loads(text) for text in rows["inputs"]]
    frame = pd.DataFrame.from_records(records, index=rows.index)
    absent = {}
    for column in columns:
        if column.name not in frame:
            frame[column.name] = None
            absent[column.name] = len(frame)
        else:
            absent[column.name] = 0
    return frame, absent


def outputs(rows: pd.DataFrame, classes: list[str] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Logged predictions (labels or values) and, for classifiers, the (rows, classes) probabilities."""
    predictions = np.asarray([json.loads(p) for p in rows["prediction"]], dtype=object if classes else float)
    if not classes:
        return predictions, None
    probabilities = np.asarray([json.loads(p) if p else [np.nan] * len(classes) for p in rows["probabilities"]])
    return predictions.astype(str), probabilities.reshape(len(rows), len(classes))


def reference_outputs(reference: pd.DataFrame, classes: list[str] | None) -> tuple[np.ndarray, np.ndarray | None]:
    if not classes:
        return reference["prediction"].to_numpy(dtype=float), None
    probabilities = reference[[f"proba_{c}" for c in classes]].to_numpy(dtype=float)
    return reference["prediction"].astype(str).to_numpy(), probabilities


def labels(rows: pd.DataFrame) -> pd.Series:
    """Feedback labels joined to the rows (None where none arrived)."""
    return rows["label"].map(lambda text: json.loads(text) if isinstance(text, str) else None)


def as_python(value: Any) -> Any:
    """numpy scalars as Python ones, for JSON."""
    return value.item() if isinstance(value, np.generic) else value
