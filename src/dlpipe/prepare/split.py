"""Reproducible train / validation / test splits: random, stratified, group, time, or a fixed column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlpipe.errors import DataError

SPLITS = ("train", "validation", "test")
COLUMN_VALUES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
    "holdout": "test",
}


def split_rows(
    frame: pd.DataFrame,
    *,
    method: str,
    validation: float,
    test: float,
    seed: int,
    column: str | None = None,
    labels: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Row positions per split, and notes. Fractions of 0 leave that split empty (a separate file fills it)."""
    n = len(frame)
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    if method in ("group", "time", "column") and column not in frame.columns:
        raise DataError(f"split column {column!r} is not in the data", where="data.split.column")
    if method == "column":
        return _by_column(frame[column]), notes
    if method == "time":
        order = _time_order(frame[column])
        return _cut(order, validation, test), notes  # oldest train, newest test
    if method == "group":
        return _by_group(frame[column], validation, test, rng), notes
    if method == "stratified":
        if labels is None:
            raise DataError("stratified split needs a classification target", where="data.split.method")
        counts = np.bincount(labels)
        if (counts[counts > 0] < 3).any():
            notes.append("stratified split fell back to random: a class has fewer than 3 rows")
        else:
            return _stratified(labels, validation, test, rng), notes
    return _cut(rng.permutation(n), validation, test), notes


def _cut(order: np.ndarray, validation: float, test: float) -> dict[str, np.ndarray]:
    """The first rows of `order` train, the next validate, the last test."""
    n = len(order)
    n_test, n_val = round(n * test), round(n * validation)
    n_train = n - n_test - n_val
    return {
        "train": np.sort(order[:n_train]),
        "validation": np.sort(order[n_train : n_train + n_val]),
        "test": np.sort(order[n_train + n_val :]),
    }


def _stratified(labels: np.ndarray, validation: float, test: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        for name, idx in _cut(rows, validation, test).items():
            parts[name].append(idx)
    return {name: np.sort(np.concatenate(idx)) for name, idx in parts.items()}


def _by_group(groups: pd.Series, validation: float, test: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    keys = groups.astype("string").fillna("<missing>").to_numpy()
    unique, inverse, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    order = rng.permutation(len(unique))
    share = np.cumsum(sizes[order]) / len(keys)
    assign = np.empty(len(unique), dtype=np.int8)
    assign[order] = np.where(share <= 1 - validation - test + 1e-9, 0, np.where(share <= 1 - test + 1e-9, 1, 2))
    row_split = assign[inverse]
    return {name: np.flatnonzero(row_split == i) for i, name in enumerate(SPLITS)}


def _time_order(column: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce")
    if values.notna().mean() < 0.95:
        values = pd.to_datetime(column, errors="coerce", format="mixed")
    if values.notna().mean() < 0.95:
        raise DataError(f"time split column {column.name!r} holds neither dates nor numbers", where="data.split.column")
    return np.argsort(values.to_numpy(), kind="stable")


def _by_column(column: pd.Series) -> dict[str, np.ndarray]:
    names = column.astype("string").str.strip().str.lower().map(COLUMN_VALUES)
    unknown = column[names.isna()].dropna().unique()[:5]
    if len(unknown):
        raise DataError(
            f"split column {column.name!r} holds values other than train/validation/test: {list(unknown)}",
            where="data.split.column",
        )
    return {name: np.flatnonzero((names == name).to_numpy()) for name in SPLITS}
