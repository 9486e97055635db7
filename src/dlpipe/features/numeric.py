"""Numbers: imputation with a missing indicator, scaling, and learned per-feature embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.features.base import FeatureType

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
            from dlpipe.errors import DataError

            example = next(v for v in column.dropna() if pd.isna(pd.to_numeric(v, errors="coerce")))
            raise DataError(
                f"column {column.name!r} is numeric but {given - len(present)} of its {given} values are not "
                f"numbers (e.g. {example!r})",
                where=f"features.{column.name}",
                fix="declare it `type: category`, or clean the column",
            )
        missing = spec.missing if spec and spec.missing else "median"
        if present.size == 0:
            fill = 0.0
        elif missing == "mean":
            fill = float(present.mean())
        elif missing == "constant":
            fill = _number(spec.fill_value, column.name)
        elif missing == "most_frequent":
            fill = float(pd.Series(present).mode().iloc[0])
        else:
            fill = float(np.median(present))
        filled = x.fillna(fill).to_numpy()  # finite: to_numbers drops infinities
        scale = spec.scale if spec and spec.scale else "standard"
        state: dict[str, Any] = {"fill": fill, "missing": missing, "scale": scale}
        if scale == "standard":
            state.update(center=float(filled.mean()), spread=_safe(float(filled.std())))
        elif scale == "robust":
            q1, med, q3 = np.percentile(filled, [25, 50, 75])
            state.update(center=float(med), spread=_safe(float(q3 - q1) or float(filled.std())))
        elif scale == "quantile":
            state["quantiles"] = np.quantile(filled, np.linspace(0, 1, QUANTILES)).tolist()
        else:
            state.update(center=0.0, spread=1.0)
        return state

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
