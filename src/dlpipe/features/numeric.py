"""Numbers: imputation with a missing indicator, scaling, and learned per-feature embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.features.base import FeatureType, Fitter
from dlpipe.sketch import CappedCounts, Moments, QuantileSketch

if TYPE_CHECKING:
    from dlpipe.features.encoders import NumericEmbedding
    from dlpipe.spec import FeatureSpec, ModelSpec

QUANTILES = 101
MAX_MAGNITUDE = 1e150  # beyond this, sums of squares overflow: treated as missing, like inf
MIN_PARSED_SHARE = 0.5


def to_numbers(column: pd.Series) -> pd.Series:
    """Numbers as floats; anything that does not parse, and infinities, become NaN."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    if pd.api.types.is_float_dtype(column) or pd.api.types.is_integer_dtype(column):
        # already numbers (a served request, most tables): numpy alone, ~20x faster than parsing
        values = column.to_numpy(dtype=float, na_value=np.nan)
        values = np.where(np.isfinite(values) & (np.abs(values) < MAX_MAGNITUDE), values, np.nan)
        return pd.Series(values, index=column.index, name=column.name)
    numbers = pd.to_numeric(column, errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers) & (numbers.abs() < MAX_MAGNITUDE))


def numeric_share(column: pd.Series) -> float:
    """The share of the non-missing values that parse as numbers."""
    present = column.dropna()
    if present.empty:
        return 0.0
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        return 1.0
    return float(pd.to_numeric(present.astype(str).str.strip(), errors="coerce").notna().mean())


class Numeric(FeatureType):
    name = "numeric"
    options = frozenset({"missing", "fill_value", "scale"})

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        x = to_numbers(column)
        present = x.dropna().to_numpy()
        given = int(column.notna().sum())
        if given and len(present) < MIN_PARSED_SHARE * given:
            raise not_numbers(column.name, given, len(present), _first_refused(column, x))
        return numeric_state(spec, _Exact(x, present), column.name)

    def fitter(self, name: str, spec: FeatureSpec | None) -> NumericFitter:
        return NumericFitter(name, spec)

    def transform(self, column: pd.Series, state: dict[str, Any]) -> np.ndarray:
        x = to_numbers(column).to_numpy()
        missing = ~np.isfinite(x)
        x = np.where(missing, state["fill"], x)
        if state["scale"] == "quantile":
            # map to a standard normal through the training quantiles, as scikit-learn's
            # QuantileTransformer(output_distribution="normal") does
            from scipy.special import ndtri

            q = np.asarray(state["quantiles"])
            u = np.interp(x, q, np.linspace(0, 1, len(q)))
            x = ndtri(np.clip(u, 1e-4, 1 - 1e-4))
        else:
            x = (x - state["center"]) / state["spread"]
        x = np.clip(x, -10, 10)  # an outlier at serving time must not blow up activations
        return np.stack([x, missing.astype(float)], axis=-1)

    def encoder(self, states: list[dict[str, Any]], model: ModelSpec) -> NumericEmbedding:
        from dlpipe.features.encoders import NumericEmbedding

        # `auto` is settled by prepare from the training rows; a network built without it feeds raw values
        size = 0 if model.numeric_embedding == "auto" else model.numeric_embedding
        return NumericEmbedding(len(states), size, model.numeric_embedding_kind)


class _Exact:
    """The statistics `numeric_state` needs, from a whole column in memory."""

    def __init__(self, x: pd.Series, present: np.ndarray) -> None:
        self.x, self.present, self.n = x, present, len(present)

    def mean(self) -> float:
        return float(self.present.mean())

    def median(self) -> float:
        return float(np.median(self.present))

    def mode(self) -> float:
        return float(pd.Series(self.present).mode().iloc[0])

    def filled_moments(self, fill: float) -> tuple[float, float]:
        filled = self.x.fillna(fill).to_numpy()  # finite: to_numbers drops infinities
        return float(filled.mean()), float(filled.std())

    def filled_quantiles(self, fill: float, qs: np.ndarray) -> np.ndarray:
        return np.quantile(self.x.fillna(fill).to_numpy(), qs)


class NumericFitter(Fitter):
    """Numeric state in one pass: moments for mean and spread, a sketch for median and quantiles."""

    def __init__(self, name: str, spec: FeatureSpec | None) -> None:
        super().__init__(name, spec)
        self.moments, self.sketch, self.given, self.example = Moments(), QuantileSketch(), 0, None
        self.values = CappedCounts() if spec and spec.missing == "most_frequent" else None

    def add(self, column: pd.Series) -> None:
        x = to_numbers(column).to_numpy()
        present = x[np.isfinite(x)]
        given = int(column.notna().sum())
        if self.example is None and len(present) < given:
            self.example = _first_refused(column, pd.Series(x, index=column.index))
        self.given += given
        self.moments.update(present)
        self.sketch.update(present)
        if self.values is not None:
            self.values.update(pd.Series(present))

    @property
    def n(self) -> int:
        return self.moments.n

    def mean(self) -> float:
        return self.moments.mean

    def median(self) -> float:
        return float(self.sketch.quantiles([0.5])[0])

    def mode(self) -> float:
        return float(self.values.most_common().index[0])  # the smallest of the most frequent, as pandas

    def filled_moments(self, fill: float) -> tuple[float, float]:
        filled = Moments(**vars(self.moments))
        filled.merge(Moments(self.rows - self.n, fill, 0.0, fill, fill))
        return filled.mean, filled.std()

    def filled_quantiles(self, fill: float, qs: np.ndarray) -> np.ndarray:
        return self.sketch.quantiles(qs, extra=(fill, self.rows - self.n))

    def state(self) -> dict[str, Any]:
        if self.given and self.n < MIN_PARSED_SHARE * self.given:
            raise not_numbers(self.name, self.given, self.n, self.example)
        return numeric_state(self.spec, self, self.name)

    def summary(self) -> dict[str, Any]:
        if not self.n:
            return {}
        m = self.moments
        return {"min": m.low, "max": m.high, "mean": m.mean, "std": m.std(), "histogram": self.sketch.histogram()}


def numeric_state(spec: FeatureSpec | None, stats: _Exact | NumericFitter, name: object) -> dict[str, Any]:
    """The fitted state from a column's statistics (exact in memory, one-pass when streaming)."""
    missing = spec.missing if spec and spec.missing else "median"
    if stats.n == 0:
        fill = 0.0
    elif missing == "mean":
        fill = stats.mean()
    elif missing == "constant":
        fill = _number(spec.fill_value, name)
    elif missing == "most_frequent":
        fill = stats.mode()
    else:
        fill = stats.median()
    scale = spec.scale if spec and spec.scale else "standard"
    state: dict[str, Any] = {"fill": fill, "missing": missing, "scale": scale}
    if scale == "standard":
        center, spread = stats.filled_moments(fill)
        state.update(center=center, spread=_safe(spread))
    elif scale == "robust":
        q1, med, q3 = stats.filled_quantiles(fill, np.array([0.25, 0.5, 0.75]))
        state.update(center=float(med), spread=_safe(float(q3 - q1) or stats.filled_moments(fill)[1]))
    elif scale == "quantile":
        state["quantiles"] = stats.filled_quantiles(fill, np.linspace(0, 1, QUANTILES)).tolist()
    else:
        state.update(center=0.0, spread=1.0)
    return state


def not_numbers(name: object, given: int, parsed: int, example: object) -> Exception:
    from dlpipe.errors import DataError

    return DataError(
        f"column {name!r} is numeric but {given - parsed} of its {given} values are not numbers (e.g. {example!r})",
        where=f"features.{name}",
        fix="declare it `type: category`, or clean the column",
    )


def _first_refused(column: pd.Series, numbers: pd.Series) -> object:
    """The first value given that is no number to `to_numbers` (text, inf, 1e200), for the message."""
    refused = column.notna() & numbers.isna()
    return column[refused].iloc[0] if refused.any() else None


def _safe(spread: float) -> float:
    return spread if np.isfinite(spread) and spread > 1e-12 else 1.0


def _number(value: object, name: object) -> float:
    """The constant fill of a numeric column, refused with its key when it is not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        from dlpipe.errors import ConfigError

        raise ConfigError(
            f"fill_value {value!r} is not a number, and column {name!r} is numeric", where=f"features.{name}.fill_value"
        ) from None
