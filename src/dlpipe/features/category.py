"""Categories: integer codes with missing and unseen buckets, rare levels merged, learned embeddings."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.features.base import FeatureType, Fitter
from dlpipe.sketch import CappedCounts

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
    return map_distinct(column, clean_value).astype("string")


def map_distinct(column: pd.Series, function: Callable[[Any], Any]) -> pd.Series:
    """`column.map(function)`, calling it once per distinct value rather than once per row.

    Only for columns of one kind of value: in an object column 1, 1.0 and True are one key to a
    hash table but not to `clean_value`, so those are mapped row by row.
    """
    if column.dtype == object:
        return column.map(function)
    codes, distinct = pd.factorize(column)
    mapped = np.array([*map(function, distinct), pd.NA], dtype=object)  # code -1 (missing) takes the last
    return pd.Series(mapped[codes], index=column.index, name=column.name, dtype=object)


def category_state(counts: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
    """Levels kept from the training counts (largest first); the rest merge into the rare bucket."""
    min_frequency = spec.min_frequency if spec and spec.min_frequency else 2
    max_levels = spec.max_levels if spec and spec.max_levels else 1000
    kept = counts[counts >= min_frequency].index[:max_levels]
    levels = sorted(str(v) for v in kept)
    rare = int(counts.drop(kept).sum())
    return {"levels": levels, "merged_rare": rare, "merged_levels": len(counts) - len(levels)}


class CountsFitter(Fitter):
    """Counts of the cleaned values over batches (capped: see CappedCounts); the state comes from them."""

    def __init__(self, name: str, spec: FeatureSpec | None, state: Callable[[pd.Series], dict[str, Any]]) -> None:
        super().__init__(name, spec)
        self.counts, self._state = CappedCounts(), state

    def add(self, column: pd.Series) -> None:
        self.counts.update(normalise(column))

    def state(self) -> dict[str, Any]:
        return self._state(self.counts.most_common())

    def summary(self) -> dict[str, Any]:
        top = self.counts.most_common()
        out: dict[str, Any] = {"top": {str(k): int(v) for k, v in top.head(10).items()}}
        if self.counts.exact:
            out["distinct"] = len(top)
        return out


class Category(FeatureType):
    name = "category"
    options = frozenset({"min_frequency", "max_levels"})
    dtype = "int64"

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        return category_state(normalise(column).value_counts(dropna=True), spec)

    def fitter(self, name: str, spec: FeatureSpec | None) -> CountsFitter:
        return CountsFitter(name, spec, lambda counts: category_state(counts, spec))

    def transform(self, column: pd.Series, state: dict[str, Any]) -> np.ndarray:
        lookup = {level: i + 2 for i, level in enumerate(state["levels"])}
        values = normalise(column)
        codes = map_distinct(values, lambda v: MISSING if v is pd.NA else lookup.get(v, RARE))
        return codes.fillna(MISSING).to_numpy(dtype=np.int64)

    def encoder(self, states: list[dict[str, Any]], model: ModelSpec) -> CategoryEmbedding:
        from dlpipe.features.encoders import CategoryEmbedding

        cardinalities = [len(s["levels"]) + 2 for s in states]
        return CategoryEmbedding(cardinalities, model.category_embedding)
