"""Live performance: the problem's metrics on rows whose feedback label has arrived, with label
coverage; and, for classifiers, an estimate without labels from the model's own confidence (as
NannyML's CBPE): each row's probabilities stand in for its unknown label."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from dlpipe import metrics as registry


def live(
    task: str,
    classes: list[str] | None,
    predictions: np.ndarray,
    probabilities: Any,
    labels: list,
    threshold: float | None = None,
) -> dict:
    """Every metric of the task on the labelled rows; `labelled` and `coverage` say how many there were.
    A binary model's label metrics decide at its `threshold`, as the server did."""
    with warnings.catch_warnings():  # a window may lack some classes: scikit-learn says so each time
        warnings.simplefilter("ignore")
        return _live(task, classes, predictions, probabilities, labels, threshold)


def _live(
    task: str,
    classes: list[str] | None,
    predictions: np.ndarray,
    probabilities: Any,
    labels: list,
    threshold: float | None,
) -> dict:
    known = np.array([label is not None for label in labels], dtype=bool)
    out: dict[str, Any] = {"labelled": int(known.sum()), "coverage": float(known.mean()) if len(known) else 0.0}
    if not known.any():
        out["metrics"] = {}
        return out
    if classes:
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index.get(str(label), -1) for label in np.asarray(labels, dtype=object)[known]])
        usable = y >= 0
        found = probabilities[known][usable]
        out["metrics"] = registry.compute_all(task, y[usable], found, threshold) if usable.any() else {}
    else:
        y = np.asarray(labels, dtype=object)[known].astype(float)
        out["metrics"] = registry.compute_all(task, y, predictions[known].astype(float))
    out["metrics"] = {k: (None if v is None or math.isnan(v) else v) for k, v in out["metrics"].items()}
    return out


def estimate(probabilities: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """Expected classification metrics if the probabilities are calibrated (no labels needed)."""
    p = probabilities[~np.isnan(probabilities).any(1)]
    if len(p) == 0:
        return {}
    k = p.shape[1]
    predicted = registry.predicted(p, threshold)
    # expected confusion matrix: row i (true class) gets p[:, i] of each row predicted as j
    confusion = np.zeros((k, k))
    for j in range(k):
        confusion[:, j] = p[predicted == j].sum(0)
    support, called = confusion.sum(1), confusion.sum(0)
    hits = np.diag(confusion)
    recall = np.divide(hits, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(hits, called, out=np.zeros(k), where=called > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    out = {
        "accuracy": float(hits.sum() / len(p)),
        "balanced_accuracy": float(recall[support > 0].mean()),
        "f1_macro": float(f1.mean()),
        "log_loss": float(-np.mean(np.sum(p * np.log(np.clip(p, 1e-15, 1)), 1))),
    }
    auc = [_soft_auc(p[:, c], p[:, c]) for c in (range(k) if k > 2 else [1])]
    out["roc_auc"] = float(np.mean(auc))
    return out


def _soft_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC where each row counts as `positive` of a positive and 1 - `positive` of a negative."""
    order = np.argsort(-score, kind="stable")
    pos, neg = positive[order], 1 - positive[order]
    if pos.sum() == 0 or neg.sum() == 0:
        return float("nan")
    tpr = np.concatenate([[0], np.cumsum(pos) / pos.sum()])
    fpr = np.concatenate([[0], np.cumsum(neg) / neg.sum()])
    return float(np.trapezoid(tpr, fpr))


def worse_than(metric: str, value: float | None, reference: float | None, tolerance: float = 0.0) -> bool:
    """True when `value` is worse than `reference` by more than `tolerance`, in the metric's direction."""
    if value is None or reference is None or math.isnan(value) or math.isnan(reference):
        return False
    if registry.get(metric).greater_is_better:
        return value < reference - tolerance
    return value > reference + tolerance
