"""profile.json: what the data looked like, what each column became, and what was dropped and why."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dlpipe.features.numeric import to_numbers
from dlpipe.sketch import histogram


def column_profile(column: pd.Series, kind: str, reason: str) -> dict[str, Any]:
    """Type, the reason for it, missing rate, and a summary that fits the type."""
    out: dict[str, Any] = {"type": kind, "reason": reason, "missing_rate": round(float(column.isna().mean()), 6)}
    try:
        out["distinct"] = int(column.nunique(dropna=True))
    except TypeError:  # unhashable values (lists, objects) have no distinct count
        return out
    if kind == "numeric":
        x = to_numbers(column).dropna()  # finite values only
        if len(x):
            out.update(min=float(x.min()), max=float(x.max()), mean=float(x.mean()), std=float(x.std(ddof=0)))
            counts, edges = histogram(x.to_numpy(), 20)
            out["histogram"] = {"counts": counts.tolist(), "edges": edges.tolist()}
    elif kind == "text":
        words = column.dropna().astype(str).str.split().str.len()
        if len(words):
            out.update(words_mean=round(float(words.mean()), 2), words_max=int(words.max()))
    elif kind == "datetime":
        from dlpipe.features.datetime import to_datetimes

        dates = to_datetimes(column).dropna()
        if len(dates):
            out.update(min=dates.min().isoformat(), max=dates.max().isoformat())
    elif kind in ("category", "binary"):
        top = column.astype("string").str.strip().value_counts().head(10)
        out["top"] = {str(k): int(v) for k, v in top.items()}
    return out


def target_profile(column: pd.Series, task: str) -> dict[str, Any]:
    if task == "classification":
        from dlpipe.prepare.target import clean_labels

        counts = clean_labels(column).value_counts(dropna=True)
        return {"name": column.name, "class_balance": {str(k): int(v) for k, v in counts.items()}}
    x = to_numbers(column).dropna()
    return {
        "name": column.name,
        "min": float(x.min()),
        "max": float(x.max()),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=0)),
    }
