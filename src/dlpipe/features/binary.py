"""Two-valued columns: one number (0 or 1) and a missing indicator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.features.base import FeatureType
from dlpipe.features.category import CountsFitter, normalise

if TYPE_CHECKING:
    from dlpipe.features.encoders import Flatten
    from dlpipe.spec import FeatureSpec, ModelSpec

POSITIVE_WORDS = ("1", "true", "yes", "y", "t", "on", "positive", "pos")


class Binary(FeatureType):
    name = "binary"

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        return binary_state(normalise(column).dropna().unique().tolist(), column.name)

    def fitter(self, name: str, spec: FeatureSpec | None) -> CountsFitter:
        return CountsFitter(name, spec, lambda counts: binary_state(counts.index.tolist(), name))

    def transform(self, column: pd.Series, state: dict[str, Any]) -> np.ndarray:
        values = normalise(column)
        positive = (values == state["positive"]).fillna(False).to_numpy(dtype=bool)
        known = values.isin([state["positive"], state["negative"]]).fillna(False).to_numpy(dtype=bool)
        x = np.where(known, positive.astype(float), 0.5)  # unknown or missing: halfway, flagged
        return np.stack([x, (~known).astype(float)], axis=-1)

    def encoder(self, states: list[dict[str, Any]], model: ModelSpec) -> Flatten:
        from dlpipe.features.encoders import Flatten

        return Flatten(len(states) * 2)


def binary_state(distinct: list[str], name: object) -> dict[str, Any]:
    """Which of the two values is positive (a yes-like word, else the later in sort order)."""
    values = sorted(distinct)
    if len(values) == 1:
        values = [*values, f"not {values[0]}"]
    if len(values) != 2:
        from dlpipe.errors import DataError

        raise DataError(
            f"column {name!r} is declared binary but has {len(values)} distinct values",
            fix="declare it `type: category`",
        )
    positive = next((v for v in values if v.lower() in POSITIVE_WORDS), values[1])
    negative = values[0] if positive == values[1] else values[1]
    return {"positive": positive, "negative": negative}
