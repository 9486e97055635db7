"""Data quality of a window against the reference: missing values, numbers outside the reference's
range, categories training never saw, values of the wrong kind, features absent from requests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dlpipe.monitor.columns import CATEGORICAL, Column, values


def column_quality(
    column: Column, reference: pd.Series, current: pd.Series, absent: int, known: set[str] | None
) -> dict[str, Any]:
    """Per feature: missing share now and in the reference, out-of-range and unseen shares, violations."""
    ref_values, ref_missing, _ = values(column, reference)
    cur_values, cur_missing, wrong = values(column, current)
    rows = max(len(current), 1)
    out: dict[str, Any] = {
        "missing": float(cur_missing.mean()) if len(current) else 0.0,
        "reference_missing": float(ref_missing.mean()) if len(reference) else 0.0,
        "violations": int(wrong + absent),
    }
    out["missing_change"] = out["missing"] - out["reference_missing"]
    if column.numeric and len(ref_values) and len(cur_values):
        low, high = float(ref_values.min()), float(ref_values.max())
        out["out_of_range"] = float(((cur_values < low) | (cur_values > high)).sum() / rows)
        out["range"] = [low, high]
    if column.type in CATEGORICAL:
        seen = set(ref_values.tolist()) | (known or set())
        unseen = ~np.isin(cur_values, list(seen)) if len(cur_values) else np.zeros(0, bool)
        out["unseen"] = float(unseen.sum() / rows)
        out["unseen_values"] = sorted(set(cur_values[unseen].tolist()))[:10]
    return out


def known_levels(state: dict[str, Any]) -> set[str]:
    """The values the model learned: a category's levels, a binary column's two values."""
    return {str(v) for v in [*state.get("levels", []), state.get("positive"), state.get("negative")] if v is not None}
