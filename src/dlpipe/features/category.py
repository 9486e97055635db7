"""Categories: integer codes with missing and unseen buckets, rare levels merged, learned embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.features.base import FeatureType

if TYPE_CHECKING:
    from dlpipe.features.encoders import CategoryEmbedding
    from dlpipe.spec import FeatureSpec, ModelSpec

MISSING, RARE = 0, 1  # reserved codes; levels start at 2
MAX_CATEGORY_LEVELS = 200  # more distinct values than this (and not numbers) is probably text or an ID


def clean_value(value: Any) -> Any:
    """One value as a clean string: stripped, integral floats without '.0' (1.0 and 1 agree), NA if empty."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return pd.NA
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text if text else pd.NA


def normalise(column: pd.Series) -> pd.Series:
    """Category values as clean strings, missing as NA."""
    return column.map(clean_value).astype("string")


class Category(FeatureType):
    name = "category"
    options = frozenset({"min_frequency", "max_levels"})
    dtype = "int64"

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        counts = normalise(column).value_counts(dropna=True)
        min_frequency = spec.min_frequency if spec and spec.min_frequency else 2
        max_levels = spec.max_levels if spec and spec.max_levels else 1000
        kept = counts[counts >= min_frequency].index[:max_levels]
        levels = sorted(str(v) for v in kept)
        rare = int(counts.drop(kept).sum())
        return {"levels": levels, "merged_rare": rare, "merged_levels": len(counts) - len(levels)}

    def transform(self, column: pd.Series, state: dict[str, Any]) -> np.ndarray:
        lookup = {level: i + 2 for i, level in enumerate(state["levels"])}
        values = normalise(column)
        codes = values.map(lambda v: MISSING if v is pd.NA else lookup.get(v, RARE))
        return codes.to_numpy(dtype=np.int64)

    def encoder(self, states: list[dict[str, Any]], model: ModelSpec) -> CategoryEmbedding:
        from dlpipe.features.encoders import CategoryEmbedding

        cardinalities = [len(s["levels"]) + 2 for s in states]
        return CategoryEmbedding(cardinalities, model.category_embedding)
