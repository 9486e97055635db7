"""What every feature type provides: fitted preprocessing state and an encoder.

A feature type turns one column into numbers (with state fitted on the training split only and
saved as JSON beside the model) and builds the network piece that encodes all the columns of
that type at once. Adding a type means one module with a subclass and one registry line (and, for
a type the data can reveal by itself, a rule in `features.infer_column`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from torch import nn

    from dlpipe.spec import FeatureSpec, ModelSpec


@dataclass
class Problems:
    """Values a feature type could not use (an unreadable image, a missing file), by row position.

    Rich types report them instead of failing; the caller drops those rows from training and
    lists them in profile.json, or leaves those rows without a prediction.
    """

    rows: dict[int, str] = field(default_factory=dict)  # row position -> what went wrong
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: int, column: str, value: Any, reason: str) -> None:
        if row not in self.rows:
            self.rows[row] = f"{column}: {reason}"
        self.listed.append({"row": int(row), "column": column, "value": str(value)[:300], "reason": reason})

    def mask(self, n: int) -> np.ndarray:
        """True for the rows without a problem."""
        ok = np.ones(n, dtype=bool)
        ok[list(self.rows)] = False
        return ok


class Fitter:
    """Fits a feature type's state in one pass over batches of the training split (streaming).

    `state()` gives what `FeatureType.fit` gives for the whole column (approximately where a
    statistic needs all values at once, e.g. a median), `profile()` the column's profile.json entry.
    """

    def __init__(self, name: str, spec: FeatureSpec | None) -> None:
        self.name, self.spec = name, spec
        self.rows = self.missing = 0

    def update(self, column: pd.Series) -> None:
        self.rows += len(column)
        self.missing += int(column.isna().sum())
        self.add(column)

    def add(self, column: pd.Series) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """The type's part of the profile (range, histogram, top values)."""
        return {}

    def profile(self, kind: str, reason: str) -> dict[str, Any]:
        missing_rate = round(self.missing / self.rows, 6) if self.rows else 0.0
        return {"type": kind, "reason": reason, "missing_rate": missing_rate, **self.summary()}


class FeatureType:
    """Base class of the feature-type registry."""

    name: ClassVar[str]
    dtype: ClassVar[str] = "float32"  # numpy dtype of the transformed batch
    options: ClassVar[frozenset[str]] = frozenset()  # the FeatureSpec keys this type reads
    # Tabular types stack all their columns into one input for one encoder; rich types (images,
    # text, audio) get an input and an encoder per column, keyed "type:column".
    per_column: ClassVar[bool] = False

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        """Learn preprocessing state from the training split; the result must be JSON-serialisable."""
        raise NotImplementedError

    def fitter(self, name: str, spec: FeatureSpec | None) -> Fitter | None:
        """A one-pass fitter for streamed data, or None when the type needs its column in memory."""
        return None

    def transform(self, column: pd.Series, state: dict[str, Any]) -> np.ndarray:
        """One column to an array of shape (rows, ...) using fitted state; never fails on bad values."""
        raise NotImplementedError

    def transform_many(
        self, frame: pd.DataFrame, states: dict[str, dict], problems: Problems | None = None
    ) -> np.ndarray:
        """All columns of this type stacked on axis 1, the layout the encoder expects.

        Per-column types receive one column; values they cannot use go to `problems`, with a
        placeholder (zeros) in the array so row positions stay aligned.
        """
        return np.stack([self.transform(frame[c], s) for c, s in states.items()], axis=1).astype(self.dtype)

    def encoder(self, states: list[dict[str, Any]], model: ModelSpec) -> nn.Module:
        """A module from the stacked batch to (batch, out_dim); it sets `out_dim`."""
        raise NotImplementedError
