"""The linear baseline beside every run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlpipe.baseline import fit_baseline
from dlpipe.pipeline import Pipeline


def test_baseline_on_a_file_sorted_by_target_sees_every_class():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n)})
    frame["y"] = np.where(frame["x"] > 0, "pos", "neg")
    frame = frame.sort_values("y").reset_index(drop=True)
    config = {"name": "sorted", "problem": {"task": "classification", "target": "y"}}
    prepared = Pipeline.from_dict(config, data=frame).prepare()
    result = fit_baseline(prepared)
    assert result["name"] == "LogisticRegression"
    assert result["test"]["accuracy"] > 0.9


def test_regression_baseline_reports_in_target_units():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=300)})
    frame["y"] = 1000 + 50 * frame["x"]
    prepared = Pipeline.from_dict(
        {"name": "lin", "problem": {"task": "regression", "target": "y"}}, data=frame
    ).prepare()
    result = fit_baseline(prepared)
    assert result["test"]["r2"] > 0.999 and result["test"]["rmse"] < 1.0
