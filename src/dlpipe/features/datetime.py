"""Dates and times: the calendar parts a model can use, with cyclical (sin/cos) encodings.

A date becomes its year (scaled by the training spread, so a later year extrapolates smoothly),
and sin/cos pairs of month, day of week, day of year and, when the training data has times of
day, hour: December sits next to January and Sunday next to Monday. A missing or unparseable
value gets zeros and a missing flag, like a missing number.
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.features.base import FeatureType, Fitter
from dlpipe.sketch import Moments

if TYPE_CHECKING:
    from dlpipe.features.encoders import Flatten
    from dlpipe.spec import FeatureSpec, ModelSpec

DATE_LIKE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{4}-\d{2}-\d{2}T")
INFER_SAMPLE = 1000
# (name, period, accessor): the cyclical parts; hour only when the training data has times of day
CYCLES = (("month", 12, "month"), ("weekday", 7, "day_of_week"), ("yearday", 365.25, "day_of_year"))
HOUR = ("hour", 24, "hour")


def to_datetimes(column: pd.Series) -> pd.Series:
    """Timestamps (timezone-aware values converted to UTC, then made naive); NaT where unparseable."""
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    else:
        text = column.astype("string").str.strip()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns per format guess; the NaT count says enough
            parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def date_share(present: pd.Series) -> float:
    """The share of (a sample of) the non-missing values that are written like dates and parse as one."""
    sample = present.astype(str).head(INFER_SAMPLE)
    if sample.empty or not sample.str.contains(DATE_LIKE).mean() >= 0.95:
        return 0.0
    return float(to_datetimes(sample).notna().mean())


class Datetime(FeatureType):
    name = "datetime"

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        parsed = to_datetimes(column).dropna()
        years = parsed.dt.year + (parsed.dt.day_of_year - 1) / 365.25
        times = parsed.dt.hour * 3600 + parsed.dt.minute * 60 + parsed.dt.second
        center = float(years.mean()) if len(years) else 2000.0
        spread = float(years.std()) if len(years) > 1 else 1.0
        return {
            "year_center": center,
            "year_spread": spread if np.isfinite(spread) and spread > 1e-9 else 1.0,
            "hour": bool(len(times) and times.nunique() > 1),
        }

    def fitter(self, name: str, spec: FeatureSpec | None) -> DatetimeFitter:
        return DatetimeFitter(name, spec)

    def transform(self, column: pd.Series, state: dict[str, Any]) -> np.ndarray:
        parsed = to_datetimes(column)
        missing = parsed.isna().to_numpy()
        year = (parsed.dt.year + (parsed.dt.day_of_year - 1) / 365.25 - state["year_center"]) / state["year_spread"]
        parts = [np.clip(year.to_numpy(dtype=float, na_value=0.0), -10, 10)]
        for _, period, accessor in CYCLES + ((HOUR,) if state["hour"] else ()):
            angle = 2 * np.pi * getattr(parsed.dt, accessor).to_numpy(dtype=float, na_value=0.0) / period
            parts += [np.sin(angle), np.cos(angle)]
        out = np.stack([*parts, missing.astype(float)], axis=-1)
        out[missing, :-1] = 0.0
        return out

    def transform_many(self, frame: pd.DataFrame, states: dict[str, dict], problems: Any = None) -> np.ndarray:
        # columns may differ in width (hour or not): concatenate rather than stack
        return np.concatenate([self.transform(frame[c], s) for c, s in states.items()], axis=1).astype(self.dtype)

    def encoder(self, states: list[dict[str, Any]], model: ModelSpec) -> Flatten:
        from dlpipe.features.encoders import Flatten

        width = sum(2 + 2 * (len(CYCLES) + s["hour"]) for s in states)
        return Flatten(width)


class DatetimeFitter(Fitter):
    """Year mean and spread (moments), the range, and whether times of day vary, in one pass."""

    def __init__(self, name: str, spec: FeatureSpec | None) -> None:
        super().__init__(name, spec)
        self.years, self.first_time, self.hour = Moments(), None, False
        self.low: pd.Timestamp | None = None
        self.high: pd.Timestamp | None = None

    def add(self, column: pd.Series) -> None:
        parsed = to_datetimes(column).dropna()
        if parsed.empty:
            return
        self.years.update((parsed.dt.year + (parsed.dt.day_of_year - 1) / 365.25).to_numpy(dtype=float))
        times = (parsed.dt.hour * 3600 + parsed.dt.minute * 60 + parsed.dt.second).to_numpy()
        self.first_time = times[0] if self.first_time is None else self.first_time
        self.hour = self.hour or bool((times != self.first_time).any())
        low, high = parsed.min(), parsed.max()
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def state(self) -> dict[str, Any]:
        spread = self.years.std(ddof=1)  # pandas' default, as Datetime.fit
        return {
            "year_center": self.years.mean if self.years.n else 2000.0,
            "year_spread": spread if np.isfinite(spread) and spread > 1e-9 else 1.0,
            "hour": self.hour,
        }

    def summary(self) -> dict[str, Any]:
        return {"min": self.low.isoformat(), "max": self.high.isoformat()} if self.low is not None else {}
