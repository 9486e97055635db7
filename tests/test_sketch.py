"""The one-pass statistics against numpy on known data, whatever the batches; the bins of any floats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dlpipe.errors import DataError
from dlpipe.features.numeric import Numeric
from dlpipe.monitor.drift import column_drift
from dlpipe.prepare.profile import column_profile
from dlpipe.sketch import CappedCounts, Moments, QuantileSketch, histogram
from dlpipe.spec import FeatureSpec

QS = np.linspace(0, 1, 21)


def fed(x: np.ndarray, parts: int, **kwargs) -> QuantileSketch:
    sketch = QuantileSketch(**kwargs)
    for part in np.array_split(x, parts):
        sketch.update(part)
    return sketch


def test_small_data_quantiles_equal_numpy():
    x = np.random.default_rng(0).lognormal(size=3_000)
    np.testing.assert_allclose(fed(x, 7).quantiles(QS), np.quantile(x, QS), rtol=0, atol=0)
    filled = np.concatenate([x, np.full(400, 2.5)])  # a fill value weighted by the missing count
    np.testing.assert_allclose(fed(x, 3).quantiles(QS, extra=(2.5, 400)), np.quantile(filled, QS))
    counts, edges = np.histogram(x, bins=20)
    histogram = fed(x, 5).histogram()
    assert histogram["counts"] == counts.tolist() and np.allclose(histogram["edges"], edges)


def test_large_data_quantiles_within_a_small_rank_error():
    x = np.random.default_rng(1).standard_t(3, size=1_000_000)
    order = np.sort(x)
    one, other = fed(x[:600_000], 10), fed(x[600_000:], 3, seed=1)
    one.merge(other)
    for sketch in (fed(x, 40), one):
        ranks = np.searchsorted(order, sketch.quantiles(QS[1:-1])) / len(x)
        assert np.abs(ranks - QS[1:-1]).max() < 0.002
        assert sketch.count == len(x) and sum(map(len, sketch.levels)) < 20 * sketch.k


def test_moments_merge_to_numpy():
    x = np.random.default_rng(2).normal(1e6, 3.0, size=100_001)  # a large mean: naive sums lose digits
    moments = Moments()
    for part in np.array_split(x, 13):
        moments.update(part)
    assert moments.n == len(x) and moments.low == x.min() and moments.high == x.max()
    assert abs(moments.mean - x.mean()) < 1e-8 and abs(moments.std() - x.std()) < 1e-9
    assert abs(moments.std(ddof=1) - x.std(ddof=1)) < 1e-9


def test_capped_counts_are_exact_under_the_cap_and_ordered_whatever_the_batches():
    values = pd.Series(np.random.default_rng(3).choice(list("abcdefgh"), 5_000))
    one, many = CappedCounts(), CappedCounts()
    one.update(values)
    for rows in np.array_split(np.arange(len(values)), 9):
        many.update(values.iloc[rows])
    expected = values.value_counts()
    assert many.exact and many.most_common().to_dict() == expected.to_dict()
    assert many.most_common().index.tolist() == one.most_common().index.tolist()
    tied = CappedCounts()
    tied.update(pd.Series(["b", "a", "b", "a", "c"]))
    assert tied.most_common().index.tolist() == ["a", "b", "c"]
    capped = CappedCounts(cap=100)
    capped.update(pd.Series(np.arange(1_000).astype(str)))
    assert not capped.exact and len(capped.counts) == 50


# floats as a client or a file may hold them: the limits, subnormals, neighbours of one value, inf, NaN
EXTREMES = [1.7e308, -1.7e308, 5e-324, 1.0, np.nextafter(1.0, 2.0), 1e150, -1e150, np.inf, -np.inf, np.nan]
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EXTREMES))
columns = st.lists(floats, min_size=1, max_size=40)


@settings(max_examples=300)
@given(columns, st.integers(1, 25))
def test_histogram_of_any_floats_counts_every_finite_value_between_finite_edges(values, bins):
    x = np.array(values, dtype=np.float64)
    counts, edges = histogram(x, bins)
    assert len(counts) == bins and np.isfinite(edges).all() and (edges[1:] >= edges[:-1]).all()
    assert counts.sum() == np.isfinite(x).sum()  # the extremes too: they sit on the outer edges
    sketch = QuantileSketch()
    sketch.update(x[np.isfinite(x)])
    if np.isfinite(x).any():  # the streamed profile draws the same edges
        assert np.array_equal(sketch.histogram(bins)["edges"], edges)


@settings(max_examples=150)
@given(columns)
def test_profile_and_numeric_scaling_of_any_float_column(values):
    """The profile's histogram overflowed at +-1.7e308 and failed on two neighbouring floats
    ("too many bins"); scaling must map any column to finite inputs."""
    column = pd.Series(values, name="x", dtype=np.float64)
    profile = column_profile(column, "numeric", "fuzz")
    json.dumps(profile, allow_nan=False)  # profile.json: plain finite numbers
    for scale in ("standard", "robust", "quantile"):
        spec = FeatureSpec(type="numeric", scale=scale)
        try:
            state = Numeric().fit(column, spec)
        except DataError as exc:  # most values inf or beyond 1e150: no numbers to learn from
            assert "not numbers" in str(exc)
            continue
        assert np.isfinite(Numeric().transform(column, state)).all()


@settings(max_examples=100)
@given(columns, columns, st.sampled_from([None, "ks", "wasserstein", "jensenshannon"]))
def test_drift_of_any_float_columns_is_a_number_or_none(reference, current, method):
    ref, cur = (np.array(v, dtype=np.float64) for v in (reference, current))
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]  # monitor/columns.py leaves out NaN and inf
    result = column_drift(ref, cur, numeric=True, method=method)
    for key in ("score", "psi"):
        assert result[key] is None or not np.isinf(result[key])
