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
) -> tuple[dict[str, np.ndarray], list[str], int]:
    """Row positions per split, notes, and how many rows no split could take (no time or split value).

    A fraction of 0 leaves that split empty (a separate file fills it).
    """
    n = len(frame)
    rng = np.random.default_rng(seed)
    if method in ("group", "time", "column") and column not in frame.columns:
        raise DataError(f"split column {column!r} is not in the data", where="data.split.column")
    if method == "column":
        index = _by_column(frame[column])
        return index, [], n - sum(len(v) for v in index.values())
    if method == "time":
        return _by_time(frame[column], validation, test)
    if method == "group":
        index = _by_group(frame[column], validation, test, rng)
        return index, _fraction_notes(index, n, validation, test), 0
    if method == "stratified":
        if labels is None:
            raise DataError("stratified split needs a classification target", where="data.split.method")
        counts = np.bincount(labels)
        if not (counts[counts > 0] < 3).any():
            return _stratified(labels, validation, test, rng), [], 0
        notes = ["stratified split fell back to random: a class has fewer than 3 rows"]
        return _cut(rng.permutation(n), validation, test), notes, 0
    return _cut(rng.permutation(n), validation, test), [], 0


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


def _fraction_notes(index: dict[str, np.ndarray], n: int, validation: float, test: float) -> list[str]:
    """A note when whole groups could not be shared out near the requested fractions."""
    wanted = {"train": 1 - validation - test, "validation": validation, "test": test}
    got = {k: len(v) / n for k, v in index.items()}
    if all(abs(got[k] - wanted[k]) <= 0.05 for k in SPLITS):
        return []
    shares = ", ".join(f"{k} {got[k]:.0%} (asked {wanted[k]:.0%})" for k in SPLITS)
    return [f"group split: whole groups stay together, so the shares are {shares}"]


def _by_time(column: pd.Series, validation: float, test: float) -> tuple[dict[str, np.ndarray], list[str], int]:
    """Oldest rows train, newest test; rows sharing a timestamp stay on one side; rows without a time
    are left out (there is no honest place for them)."""
    values = pd.to_numeric(column, errors="coerce")
    if values.notna().sum() < 0.5 * column.notna().sum() or column.notna().sum() == 0:
        from dlpipe.features.datetime import to_datetimes

        values = to_datetimes(column)  # mixed time zones compare in UTC
    present = np.flatnonzero(values.notna().to_numpy())
    if len(present) < 0.5 * len(column):
        raise DataError(
            f"time split column {column.name!r} holds neither dates nor numbers in most rows", where="data.split.column"
        )
    times = values.to_numpy()[present]
    order = present[np.argsort(times, kind="stable")]
    sorted_times = values.to_numpy()[order]
    n = len(order)
    cuts = [n - round(n * test) - round(n * validation), n - round(n * test)]
    # move each cut back to where its timestamp begins, so one instant never spans two splits
    cuts = [int(np.searchsorted(sorted_times, sorted_times[c], side="left")) if 0 < c < n else c for c in cuts]
    parts = np.split(order, cuts)
    notes = [f"time split: {len(column) - n} rows without a time were left out"] if n < len(column) else []
    return {name: np.sort(part) for name, part in zip(SPLITS, parts, strict=True)}, notes, len(column) - n


def _by_column(column: pd.Series) -> dict[str, np.ndarray]:
    """Rows by the train/validation/test labels a column holds; rows without a label are in none."""
    text = column.astype("string").str.strip().str.lower()
    names = text.map(COLUMN_VALUES)
    unknown = column[names.isna() & text.notna() & (text != "")].dropna().unique()[:5]
    if len(unknown):
        raise DataError(
            f"split column {column.name!r} holds values other than train/validation/test: {list(unknown)}",
            where="data.split.column",
        )
    return {name: np.flatnonzero((names == name).fillna(False).to_numpy()) for name in SPLITS}


def hash_split(keys: np.ndarray, *, seed: int, validation: float, test: float) -> np.ndarray:
    """Split codes (0 train, 1 validation, 2 test) from a seeded hash of each row's key.

    A row's split depends on its key and the seed alone, so streamed batches are split without a
    global shuffle, and the same rows land in the same splits whatever the batch size.
    """
    mixed = _mix(keys.astype(np.uint64) ^ _mix(np.array([seed], dtype=np.uint64)))
    u = (mixed >> np.uint64(11)).astype(np.float64) / 2.0**53  # uniform in [0, 1)
    return np.where(u < test, 2, np.where(u < test + validation, 1, 0)).astype(np.int8)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def column_codes(column: pd.Series) -> np.ndarray:
    """Split codes from a column of train/validation/test labels; -1 for a row without one."""
    codes = np.full(len(column), -1, dtype=np.int8)
    for code, rows in enumerate(_by_column(column).values()):
        codes[rows] = code
    return codes
