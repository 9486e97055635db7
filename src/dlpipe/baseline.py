"""A linear baseline on the same split and preprocessing, so every run shows what deep learning adds.

RidgeCV for regression, logistic regression for classification, both from scikit-learn, fitted on
the training split (at most 50,000 rows) and scored on the test split with the same metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dlpipe.evaluate import score, split_targets

if TYPE_CHECKING:
    from sklearn.preprocessing import OneHotEncoder

    from dlpipe.prepare import Prepared

MAX_ROWS = 50_000
TABULAR = ("numeric", "binary", "category", "datetime")


def _design(inputs: dict[str, np.ndarray], encoder: OneHotEncoder | None) -> np.ndarray:
    parts = [inputs[k].reshape(len(inputs[k]), -1) for k in ("numeric", "binary", "datetime") if k in inputs]
    if "category" in inputs:
        parts.append(encoder.transform(inputs["category"]))
    return np.hstack(parts) if parts else np.zeros((len(next(iter(inputs.values()))), 0))


def fit_baseline(prepared: Prepared) -> dict[str, Any] | None:
    """Test metrics of the linear baseline, or None when the inputs are not tabular."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.preprocessing import OneHotEncoder

    train, test = prepared.splits["train"], prepared.splits["test"]
    if not set(train.inputs) <= set(TABULAR):
        return None
    # a seeded sample, not the first rows: files are often sorted (by target, by time)
    rows = np.sort(np.random.default_rng(0).permutation(len(train.y))[:MAX_ROWS])
    encoder = None
    if "category" in train.inputs:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(train.inputs["category"][rows])
    x_train = _design({k: v[rows] for k, v in train.inputs.items()}, encoder)
    x_test = _design(test.inputs, encoder)
    task = prepared.preprocessor.task
    y_test, decode = split_targets(prepared, "test")
    if task == "regression":
        model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x_train, train.y[rows])
        output = decode(model.predict(x_test))
        name = "RidgeCV"
    elif len(np.unique(train.y[rows])) < 2:
        return None
    else:
        model = LogisticRegression(max_iter=2000).fit(x_train, train.y[rows])
        proba = np.zeros((len(x_test), len(prepared.preprocessor.classes)))
        proba[:, model.classes_] = model.predict_proba(x_test)
        output = proba
        name = "LogisticRegression"
    return {"name": name, "test": score(task, y_test, output)}
