"""Mergeable one-pass statistics: moments (Welford/Chan), a quantile sketch, capped value counts;
and the equal-width bins every histogram of dlpipe draws (profile, sketch, drift).

Each summarises a stream of batches in bounded memory and merges with another of its kind, so a
table larger than memory is described in one pass (prepare/streamed.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _scale(low: float, high: float) -> float:
    """1, or the range's largest magnitude when it nears the float limits (beyond 1e300 the width,
    or the steps numpy multiplies it by, can overflow)."""
    magnitude = max(abs(low), abs(high))
    return magnitude if magnitude > 1e300 else 1.0


def bin_edges(low: float, high: float, bins: int) -> np.ndarray:
    """`bins` + 1 equal-width edges from low to high as np.histogram draws them (a single value gets
    the range value +- 0.5); finite for any finite range: where the width overflows, the edges are
    drawn on the range divided by its largest magnitude and multiplied back."""
    if low == high:
        low, high = low - 0.5, high + 0.5
    scale = _scale(low, high)
    return np.linspace(low / scale, high / scale, bins + 1) * scale


def histogram(
    values: np.ndarray, bins: int, low: float | None = None, high: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of the finite values in equal-width bins from low to high (default: their
    range), as np.histogram, but never an error: at the float limits the width overflowed, and a range
    narrower than `bins` representable steps (1.0 and the next float) was "too many bins"."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if low is None or high is None:
        low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    edges = bin_edges(low, high, bins)
    scale = _scale(edges[0], edges[-1])
    try:  # numpy's fast path over a range: no search per value
        counts = np.histogram(values / scale, bins, range=(edges[0] / scale, edges[-1] / scale))[0]
    except ValueError:  # too narrow for distinct steps: a search over the (partly equal) edges
        counts = np.histogram(values, edges)[0]
    return counts, edges


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, min and max; batches merge by Chan et al.'s rule."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def update(self, x: np.ndarray) -> None:
        if len(x):
            mean = float(x.mean())
            self.merge(Moments(len(x), mean, float(np.square(x - mean).sum()), float(x.min()), float(x.max())))

    def merge(self, other: Moments) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n, self.low, self.high = n, min(self.low, other.low), max(self.high, other.high)

    def std(self, ddof: int = 0) -> float:
        return math.sqrt(self.m2 / (self.n - ddof)) if self.n > ddof else math.nan


class QuantileSketch:
    """A KLL-style sketch: levels of items, each of weight 2**level; a full level is sorted and every
    other item (from a random start) moves up, halving it. Exact while fewer than `k` items arrive
    (quantiles then equal numpy's linear interpolation); beyond, rank error about 1/k per level.
    """

    def __init__(self, k: int = 4096, seed: int = 0) -> None:
        self.k = k
        self.levels: list[np.ndarray] = [np.empty(0)]
        self.rng = np.random.default_rng(seed)

    @property
    def count(self) -> int:
        return int(sum(len(items) << h for h, items in enumerate(self.levels)))

    def update(self, x: np.ndarray) -> None:
        self.levels[0] = np.concatenate([self.levels[0], np.asarray(x, dtype=np.float64)])
        self._compact()

    def merge(self, other: QuantileSketch) -> None:
        for h, items in enumerate(other.levels):
            if h == len(self.levels):
                self.levels.append(np.empty(0))
            self.levels[h] = np.concatenate([self.levels[h], items])
        self._compact()

    def _compact(self) -> None:
        h = 0
        while h < len(self.levels):
            items = self.levels[h]
            if len(items) > self.k:
                items = np.sort(items)
                keep = items[len(items) - len(items) % 2 :]  # an odd one out stays at this level
                pairs = items[: len(items) - len(keep)]
                if h + 1 == len(self.levels):
                    self.levels.append(np.empty(0))
                self.levels[h] = keep
                self.levels[h + 1] = np.concatenate([self.levels[h + 1], pairs[self.rng.integers(2) :: 2]])
            h += 1

    def _weighted(self, extra: tuple[float, int] | None) -> tuple[np.ndarray, np.ndarray]:
        items = [*self.levels]
        weights = [np.full(len(v), 1 << h, dtype=np.int64) for h, v in enumerate(self.levels)]
        if extra is not None and extra[1] > 0:  # e.g. the fill value, once per missing value
            items.append(np.array([extra[0]], dtype=np.float64))
            weights.append(np.array([extra[1]], dtype=np.int64))
        values, w = np.concatenate(items), np.concatenate(weights)
        order = np.argsort(values, kind="stable")
        return values[order], w[order]

    def quantiles(self, qs: np.ndarray | list[float], extra: tuple[float, int] | None = None) -> np.ndarray:
        """Quantiles with numpy's default (linear) interpolation between the items at the two ranks;
        `extra` adds one value with a weight (a fill value standing in for the missing ones)."""
        values, w = self._weighted(extra)
        if not len(values):
            return np.full(len(qs), np.nan)
        ends = np.cumsum(w)  # item i holds ranks ends[i] - w[i] .. ends[i] - 1
        rank = np.asarray(qs, dtype=np.float64) * (ends[-1] - 1)
        low, high = np.floor(rank), np.ceil(rank)
        at = lambda r: values[np.searchsorted(ends, r, side="right")]  # noqa: E731
        return at(low) + (rank - low) * (at(high) - at(low))

    def below(self, points: np.ndarray, inclusive: bool = False) -> np.ndarray:
        """Weight of the items below each point (or at most, with `inclusive`): histogram edges."""
        values, w = self._weighted(None)
        ends = np.concatenate([[0], np.cumsum(w)])
        return ends[np.searchsorted(values, points, side="right" if inclusive else "left")]

    def histogram(self, bins: int = 20) -> dict[str, list]:
        """Counts between `bins` + 1 equal edges from the smallest item to the largest, as np.histogram."""
        values, _ = self._weighted(None)
        edges = bin_edges(values[0], values[-1], bins)
        cuts = np.concatenate([self.below(edges[:-1]), self.below(edges[-1:], inclusive=True)])
        return {"counts": np.diff(cuts).tolist(), "edges": edges.tolist()}


class CappedCounts:
    """Counts per value; past `cap` distinct values the rarest half is dropped (and `exact` is False)."""

    def __init__(self, cap: int = 100_000) -> None:
        self.cap = cap
        self.counts = pd.Series(dtype=np.int64)
        self.exact = True

    def update(self, values: pd.Series) -> None:
        batch = values.dropna().value_counts()
        self.counts = self.counts.add(batch, fill_value=0).astype(np.int64) if len(self.counts) else batch
        if len(self.counts) > self.cap:
            self.counts = self.counts.nlargest(self.cap // 2)
            self.exact = False

    def most_common(self) -> pd.Series:
        """Counts, largest first; ties by value, so the order never depends on batch boundaries."""
        counts = self.counts
        frame = pd.DataFrame({"value": counts.index, "count": counts.to_numpy()}, index=counts.index)
        return counts[frame.sort_values(["count", "value"], ascending=[False, True]).index]
