"""Drift tests: one registry, with defaults that match Evidently's so results are comparable.

A reference of at most 1,000 rows is compared with statistical tests (drift when p < 0.05):
Kolmogorov-Smirnov for numbers with more than 5 distinct values, a two-proportion z-test for
two-valued columns, a chi-squared test of homogeneity for the rest. A larger reference is compared
with distances (drift at >= 0.1): Wasserstein distance over the reference's standard deviation for
numbers, Jensen-Shannon distance for categories. The population stability index is reported
beside. Text, image and audio columns are compared on their encoder's outputs by a domain
classifier (drift when its cross-validated ROC AUC > 0.55). Missing values are left out here;
data quality reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dlpipe.sketch import histogram

SMALL_REFERENCE = 1000  # rows; at most this many: statistical tests, else distances
FEW_VALUES = 5  # numbers with at most this many distinct values are compared as categories
DOMAIN_ROWS = 2000  # rows of each side a domain classifier trains on, at most
MIN_EMBEDDED = 20  # rows of each side below which embeddings are not compared


@dataclass(frozen=True)
class DriftMethod:
    """`fn(reference, current) -> score`; a p-value drifts below the threshold, a distance at or above it."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    threshold: float
    kind: str  # "p_value" (drift below the threshold), "distance" (at or above), "auc" (above)
    data: str  # "numeric", "categorical" or "embedding" (rows of vectors)

    def drifted(self, score: float) -> bool:
        if np.isnan(score):
            return False
        if self.kind == "auc":
            return score > self.threshold
        return score < self.threshold if self.kind == "p_value" else score >= self.threshold

    def check(self, reference: np.ndarray, current: np.ndarray) -> dict[str, object]:
        score = float(self.fn(reference, current))
        return {"method": self.name, "score": score, "threshold": self.threshold, "drift": self.drifted(score)}


def _ks(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


def _wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.stats import wasserstein_distance

    # both scale alike, so values whose squares overflow the deviation (1e200) are compared divided
    # by their largest magnitude, and the floor of the deviation with them
    scale = max(float(np.abs(reference).max()), float(np.abs(current).max()))
    scale = scale if scale > 1e150 else 1.0
    reference, current = reference / scale, current / scale
    with np.errstate(over="ignore"):  # 1e300 deviations away reads as far as infinity, but stays a number
        score = wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001 / scale)
    return float(min(score, np.finfo(np.float64).max))


def _counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of each value seen in either sample, in the same order (hashing, not sorting strings)."""
    import pandas as pd

    codes, levels = pd.factorize(np.concatenate([reference, current]))
    ref = np.bincount(codes[: len(reference)], minlength=len(levels)).astype(float)
    cur = np.bincount(codes[len(reference) :], minlength=len(levels)).astype(float)
    return ref, cur


def _chi2(reference: np.ndarray, current: np.ndarray) -> float:
    # the two-sample test of homogeneity: Evidently's goodness-of-fit variant takes the reference's
    # shares as exact and flagged 8 of 40 samples of an unchanged distribution in the conformance test
    from scipy.stats import chi2_contingency

    ref, cur = _counts(reference, current)
    if len(ref) < 2:
        return 1.0
    return float(chi2_contingency(np.stack([ref, cur])).pvalue)


def _z_proportions(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.stats import norm

    first = reference[0] if len(reference) else current[0]
    a, b = float(np.mean(reference == first)), float(np.mean(current == first))
    pooled = (a * len(reference) + b * len(current)) / (len(reference) + len(current))
    spread = np.sqrt(pooled * (1 - pooled) * (1 / len(reference) + 1 / len(current)))
    if spread == 0:
        return 1.0
    return float(2 * norm.sf(abs(a - b) / spread))


def _shares(reference: np.ndarray, current: np.ndarray, bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shares per value (categories) or per bin (numbers), empty cells filled with a small share."""
    if bins is None:
        ref, cur = _counts(reference, current)
    else:
        low, high = min(reference.min(), current.min()), max(reference.max(), current.max())
        ref = histogram(reference, bins, low, high)[0].astype(float)
        cur = histogram(current, bins, low, high)[0].astype(float)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    for shares in (ref, cur):
        positive = shares[shares > 0]
        fill = positive.min() / 1e6 if positive.size and positive.min() <= 1e-4 else 1e-4
        shares[shares == 0] = fill
    return ref, cur


def _jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    ref, cur = _shares(reference, current)
    return float(jensenshannon(ref, cur))


def psi(reference: np.ndarray, current: np.ndarray, numeric: bool) -> float:
    """Population stability index over 10 bins of both samples (numbers) or over the values."""
    ref, cur = _shares(reference, current, bins=10 if numeric else None)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def _domain_classifier(reference: np.ndarray, current: np.ndarray) -> float:
    """Cross-validated ROC AUC of a classifier telling current rows (vectors) from reference rows:
    0.5 when it cannot, 1.0 when they have nothing in common."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # rows in a canonical order first: the folds, and so the score, then depend on which rows a side
    # holds, not on the order the store returned them in (a request's rows share one time)
    reference, current = (rows[np.lexsort(rows.T[::-1])] for rows in (reference, current))
    rng = np.random.default_rng(0)
    n = min(len(reference), len(current), DOMAIN_ROWS)  # balanced: AUC then reads as separability
    x = np.concatenate([reference[rng.permutation(len(reference))[:n]], current[rng.permutation(len(current))[:n]]])
    y = np.repeat([0, 1], n)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


METHODS: dict[str, DriftMethod] = {
    m.name: m
    for m in [
        DriftMethod("ks", _ks, 0.05, "p_value", "numeric"),
        DriftMethod("chisquare", _chi2, 0.05, "p_value", "categorical"),
        DriftMethod("z", _z_proportions, 0.05, "p_value", "categorical"),
        DriftMethod("wasserstein", _wasserstein, 0.1, "distance", "numeric"),
        DriftMethod("jensenshannon", _jensen_shannon, 0.1, "distance", "categorical"),
        DriftMethod("domain_classifier", _domain_classifier, 0.55, "auc", "embedding"),
    ]
}


def choose(numeric: bool, distinct: int, reference_rows: int) -> DriftMethod:
    """Evidently's default for a column: by the reference's size, the data's kind and its distinct values."""
    numeric = numeric and distinct > FEW_VALUES
    if reference_rows <= SMALL_REFERENCE:
        if numeric:
            return METHODS["ks"]
        return METHODS["z"] if distinct <= 2 else METHODS["chisquare"]
    return METHODS["wasserstein"] if numeric else METHODS["jensenshannon"]


def _distinct(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.unique(values)


def column_drift(reference: np.ndarray, current: np.ndarray, numeric: bool, method: str | None = None) -> dict:
    """The drift of one column (missing values already left out), with PSI beside."""
    if len(reference) == 0 or len(current) == 0:
        return {"method": None, "score": None, "threshold": None, "drift": False, "psi": None, "rows": len(current)}
    if not numeric:
        reference, current = reference.astype(str), current.astype(str)
    distinct = len(_distinct(reference))
    chosen = METHODS[method] if method else choose(numeric, distinct, len(reference))
    result = chosen.check(reference, current)
    result["psi"] = psi(reference, current, numeric and chosen.data == "numeric")
    result["rows"] = len(current)
    return result


def embedding_drift(reference: np.ndarray, current: np.ndarray) -> dict:
    """The drift of an embedded column: a domain classifier on the vectors of both sides."""
    if min(len(reference), len(current)) < MIN_EMBEDDED or reference.shape[1:] != current.shape[1:]:
        note = f"fewer than {MIN_EMBEDDED} embedded rows on a side" if len(reference) and len(current) else None
        result = {"method": None, "score": None, "threshold": None, "drift": False, "psi": None}
        return result | {"rows": len(current), "note": note or "no embeddings logged"}
    return METHODS["domain_classifier"].check(reference, current) | {"psi": None, "rows": len(current)}
