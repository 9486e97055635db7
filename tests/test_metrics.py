"""The metric registry against scikit-learn, and goal directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from dlpipe.metrics import METRICS, compute_all, default_metric, get


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    got = compute_all("classification", y, proba)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(1)))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, proba.argmax(1), average="macro"))


def test_roc_auc_with_a_class_absent_from_the_split():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    assert get("roc_auc").fn(y, proba) == 1.0
    assert math.isnan(get("roc_auc").fn(np.array([1, 1]), proba[:2]))


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, pred = rng.normal(10, 2, 100), rng.normal(10, 2, 100)
    got = compute_all("regression", y, pred)
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))


def test_directions():
    assert get("roc_auc").meets(0.9, 0.85) and not get("roc_auc").meets(0.8, 0.85)
    assert get("rmse").meets(1.0, 2.0) and not get("rmse").meets(3.0, 2.0)
    assert not get("accuracy").meets(float("nan"), 0.1)
    assert get("log_loss").better(0.1, 0.2) and get("accuracy").better(0.5, float("nan"))


def test_every_metric_declares_a_task():
    assert all(m.tasks for m in METRICS.values())
    assert default_metric("classification", 2) == "roc_auc"
    assert default_metric("classification", 5) == "accuracy"
    assert default_metric("regression", 0) == "rmse"


def test_goal_checks_follow_each_metrics_direction():
    from dlpipe.metrics import check_goal

    result = check_goal({"r2": 0.5, "rmse": 10.0}, {"r2": 0.6, "rmse": 12.0})
    assert not result["passed"]
    assert [c["passed"] for c in result["checks"]] == [True, False]
    assert [c["direction"] for c in result["checks"]] == [">=", "<="]
    assert check_goal({}, {"r2": 0.1})["passed"]
    assert not check_goal({"roc_auc": 0.5}, {"roc_auc": float("nan")})["passed"]
