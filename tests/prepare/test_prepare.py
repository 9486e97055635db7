"""Preprocessing: target handling, statistics fitted on train only, dropped rows and columns recorded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlpipe.collect import Collected
from dlpipe.errors import DataError
from dlpipe.prepare import prepare
from dlpipe.spec import validate_spec


def run_prepare(frame: pd.DataFrame, task="classification", target="y", **data):
    spec = validate_spec(
        {"name": "t", "problem": {"task": task, "target": target}, "data": {"source": "x.csv", **data}}
    )
    return prepare(spec, Collected(frame, "test frame"))


def table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "x": x,
            "plan": rng.choice(["free", "pro", "team"], n),
            "flag": rng.choice(["yes", "no"], n),
            "y": np.where(x > 0, ">50K", "<=50K"),
        }
    )


def test_messy_labels_are_one_class():
    f = table()
    f.loc[::3, "y"] = f.loc[::3, "y"] + "."
    f.loc[1::5, "y"] = "  " + f.loc[1::5, "y"] + " "
    prepared = run_prepare(f)
    assert prepared.preprocessor.classes == ["<=50K", ">50K"]


def test_statistics_come_from_the_training_split_only():
    prepared = run_prepare(table())
    state = next(c.state for c in prepared.preprocessor.columns if c.name == "x")
    train_x = prepared.splits["train"].frame["x"]
    assert state["center"] == pytest.approx(train_x.mean())
    assert state["center"] != pytest.approx(pd.concat([s.frame["x"] for s in prepared.splits.values()]).mean())


def test_rows_without_target_are_dropped_and_recorded():
    f = table()
    f.loc[:9, "y"] = None
    prepared = run_prepare(f)
    dropped = prepared.profile["dropped"]["rows"]
    assert dropped[0]["count"] == 10
    assert sum(len(s) for s in prepared.splits.values()) == len(f) - 10


def test_ignored_columns_have_reasons():
    f = table()
    f["customer_id"] = np.arange(len(f))
    f["constant"] = 1
    prepared = run_prepare(f)
    reasons = {d["name"]: d["reason"] for d in prepared.profile["dropped"]["columns"]}
    assert "ID" in reasons["customer_id"] and "constant" in reasons["constant"]
    assert {c.name for c in prepared.preprocessor.columns} == {"x", "plan", "flag"}


def test_resolved_spec_fills_inferred_choices():
    prepared = run_prepare(table())
    assert prepared.spec.problem.metric == "roc_auc"
    assert prepared.spec.data.split.method == "stratified"
    assert prepared.spec.feature_spec("plan").type == "category"


def test_target_position():
    prepared = run_prepare(table(), target=-1)
    assert prepared.preprocessor.target == "y"


@pytest.mark.parametrize(
    ("change", "task", "message"),
    [
        (lambda f: f.assign(y="same"), "classification", "one class"),
        (lambda f: f, "regression", "not numeric"),
        (lambda f: f.rename(columns={"y": "label"}), "classification", "not in the data"),
        (lambda f: f.assign(y=np.arange(len(f)) * 1.37), "classification", "looks continuous"),
    ],
)
def test_unlearnable_targets_are_refused(change, task, message):
    with pytest.raises(DataError, match=message):
        run_prepare(change(table()), task=task)


def test_empty_split_is_refused():
    with pytest.raises(DataError, match="empty"):
        run_prepare(table(n=30), split={"validation": 0.01, "test": 0.2})


def test_regression_target_is_standardised_and_decodes():
    f = table()
    f["y"] = f["x"] * 100 + 5000
    prepared = run_prepare(f, task="regression")
    y = prepared.splits["train"].y
    assert abs(y.mean()) < 1e-9 and y.std() == pytest.approx(1.0)
    decoded = prepared.preprocessor.decode_regression(y)
    np.testing.assert_allclose(decoded, prepared.splits["train"].frame["y"].to_numpy())


def test_unknown_feature_override_is_named():
    spec = validate_spec(
        {
            "name": "t",
            "problem": {"task": "classification", "target": "y"},
            "data": {"source": "x.csv"},
            "features": {"palnn": {"type": "category"}},
        }
    )
    with pytest.raises(DataError, match="palnn"):
        prepare(spec, Collected(table(), "t"))


def test_separate_test_file_is_the_test_split(tmp_path):
    train, test = table(300, seed=0), table(80, seed=1)
    path = tmp_path / "test.csv"
    test.to_csv(path, index=False)
    spec = validate_spec(
        {
            "name": "t",
            "problem": {"task": "classification", "target": "y"},
            "data": {"source": "x.csv", "test": str(path)},
        }
    )
    from dlpipe.collect import collect

    prepared = prepare(spec, Collected(train, "train frame"), None, collect(spec.data.test))
    assert len(prepared.splits["test"]) == 80
    assert len(prepared.splits["train"]) + len(prepared.splits["validation"]) == 300
    np.testing.assert_allclose(prepared.splits["test"].frame["x"].to_numpy(), test["x"].to_numpy())


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"plan": {"type": "category", "scale": "robust"}}, "scale does not apply to category"),
        ({"x": {"min_frequency": 3}}, "min_frequency does not apply to numeric"),
        ({"y": {"type": "numeric"}}, "target column"),
    ],
)
def test_settings_a_column_would_ignore_are_refused(features, message):
    from dlpipe.errors import ConfigError

    spec = validate_spec(
        {
            "name": "t",
            "problem": {"task": "classification", "target": "y"},
            "data": {"source": "x.csv"},
            "features": features,
        }
    )
    with pytest.raises(ConfigError, match=message):
        prepare(spec, Collected(table(), "t"))
