"""The one-pass statistics against numpy on known data, whatever the batches."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlpipe.sketch import CappedCounts, Moments, QuantileSketch

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
