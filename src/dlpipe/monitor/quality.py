"""Data quality of a window against the reference: missing values, numbers outside the reference's
range, categories training never saw, values of the wrong kind, features absent from requests."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dlpipe.monitor.columns import CATEGORICAL, Column, Values


def column_quality(column: Column, reference: Values, current: Values, absent: int, known: set[str] | None) -> dict:
    """Per feature: missing share now and in the reference, out-of-range and unseen shares, violations.
    `reference` and `current` are `columns.values` of the column."""
    ref_values, ref_missing, _ = reference
    cur_values, cur_missing, wrong = current
    rows = max(len(cur_missing), 1)
    out: dict[str, Any] = {
        "missing": float(cur_missing.mean()) if len(cur_missing) else 0.0,
        "reference_missing": float(ref_missing.mean()) if len(ref_missing) else 0.0,
        "violations": int(wrong + absent),
    }
    out["missing_change"] = out["missing"] - out["reference_missing"]
    if column.numeric and len(ref_values) and len(cur_values):
        low, high = float(ref_values.min()), float(ref_values.max())
        out["out_of_range"] = float(((cur_values < low) | (cur_values > high)).sum() / rows)
        out["range"] = [low, high]
    if column.type in CATEGORICAL:
        seen = set(pd.unique(ref_values).tolist()) | (known or set())
        unseen = ~pd.Series(cur_values, dtype=object).isin(seen).to_numpy()
        out["unseen"] = float(unseen.sum() / rows)
        out["unseen_values"] = sorted(set(cur_values[unseen].tolist()))[:10]
    return out


def known_levels(state: dict[str, Any]) -> set[str]:
    """The values the model learned: a category's levels, a binary column's two values."""
    return {str(v) for v in [*state.get("levels", []), state.get("positive"), state.get("negative")] if v is not None}
