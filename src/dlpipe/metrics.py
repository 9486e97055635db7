"""The metric registry: one entry per metric name used in `problem.metric`, `goal` and metrics.json.

Classification metrics take integer labels and an (n, classes) probability matrix; those judged on
labels (accuracy, balanced accuracy, F1) read them off it with `predicted`, at a binary model's
decision threshold when one is given. Regression metrics take true and predicted values.
scikit-learn is imported on first use, so the CLI and the config loader stay quick to start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

CLASSIFICATION = ("classification",)
REGRESSION = ("regression",)


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool
    tasks: tuple[str, ...]
    on_labels: bool = False  # judged on predicted labels, so a decision threshold changes it

    def score(self, y: np.ndarray, output: np.ndarray, threshold: float | None = None) -> float:
        """The metric of `output`; label metrics of a binary model decide at `threshold` (else argmax)."""
        if self.on_labels and threshold is not None:
            return self.fn(y, _one_hot(predicted(output, threshold), output.shape[1]))
        return self.fn(y, output)

    def better(self, a: float, b: float) -> bool:
        """True when score `a` is strictly better than `b` (NaN is never better)."""
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a > b if self.greater_is_better else a < b

    def meets(self, value: float, goal: float) -> bool:
        """True when `value` reaches `goal` in this metric's direction."""
        if math.isnan(value):
            return False
        return value >= goal if self.greater_is_better else value <= goal


def predicted(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class codes from probabilities: the most probable class, or for a binary model with a
    `threshold`, the positive class (code 1) wherever its probability reaches it."""
    if threshold is not None and proba.shape[1] == 2:
        return (proba[:, 1] >= threshold).astype(np.int64)
    return proba.argmax(1)


def _one_hot(codes: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes)[codes]


def _accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(proba.argmax(1) == y))


def _balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, proba.argmax(1)))


def _f1_macro(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, proba.argmax(1), average="macro", labels=np.arange(proba.shape[1]), zero_division=0))


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")  # undefined with one class present
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    present = np.unique(y)
    if len(present) < proba.shape[1]:
        # one-vs-rest over the classes present, renormalised, as scikit-learn requires
        sub = proba[:, present] / proba[:, present].sum(1, keepdims=True)
        codes = np.searchsorted(present, y)
        if len(present) == 2:
            return float(roc_auc_score(codes, sub[:, 1]))
        return float(roc_auc_score(codes, sub, multi_class="ovr"))
    return float(roc_auc_score(y, proba, multi_class="ovr"))


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    proba = np.clip(proba, 1e-15, 1.0)
    return float(log_loss(y, proba / proba.sum(1, keepdims=True), labels=np.arange(proba.shape[1])))


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(pred, float)) ** 2)))


def _mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(pred, float))))


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y, pred)) if len(y) > 1 else float("nan")


def _mape(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import mean_absolute_percentage_error

    return float(mean_absolute_percentage_error(y, pred))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", _accuracy, True, CLASSIFICATION, on_labels=True),
        Metric("balanced_accuracy", _balanced_accuracy, True, CLASSIFICATION, on_labels=True),
        Metric("f1_macro", _f1_macro, True, CLASSIFICATION, on_labels=True),
        Metric("roc_auc", _roc_auc, True, CLASSIFICATION),
        Metric("log_loss", _log_loss, False, CLASSIFICATION),
        Metric("rmse", _rmse, False, REGRESSION),
        Metric("mae", _mae, False, REGRESSION),
        Metric("r2", _r2, True, REGRESSION),
        Metric("mape", _mape, False, REGRESSION),
    ]
}


def get(name: str) -> Metric:
    """The metric called `name` (the spec has already checked that it exists)."""
    return METRICS[name]


def compute_all(task: str, y: np.ndarray, output: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """Every metric of the task; `output` is probabilities (classification) or values (regression);
    a binary model's label metrics decide at `threshold` when given."""
    return {name: m.score(y, output, threshold) for name, m in METRICS.items() if task in m.tasks}


def default_metric(task: str, n_classes: int) -> str:
    """The metric used when the pipeline file names none."""
    if task == "regression":
        return "rmse"
    return "roc_auc" if n_classes == 2 else "accuracy"


def check_goal(goal: dict[str, float], test: dict[str, float]) -> dict[str, Any]:
    """One check per goal metric on the test set; passed when all pass (and when no goal is set)."""
    checks = []
    for name, target in goal.items():
        metric = get(name)
        achieved = test.get(name, float("nan"))
        checks.append(
            {
                "metric": name,
                "goal": target,
                "achieved": achieved,
                "direction": ">=" if metric.greater_is_better else "<=",
                "passed": metric.meets(achieved, target),
            }
        )
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
