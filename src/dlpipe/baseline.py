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
CHUNK_ROWS = 100_000  # test rows scored at once: a streamed test split need not fit in memory
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
    # a seeded sample, not the first rows: files are often sorted (by target, by time)
    rows = np.sort(np.random.default_rng(0).permutation(len(train.y))[:MAX_ROWS])
    inputs = train.take(rows)
    if not set(inputs) <= set(TABULAR):
        return None
    encoder = None
    if "category" in inputs:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(inputs["category"])
    x_train = _design(inputs, encoder)
    task = prepared.preprocessor.task
    y_test, decode = split_targets(prepared, "test")
    if task == "regression":
        model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x_train, train.y[rows])
        output = decode(np.concatenate([model.predict(_design(x, encoder)) for x in test.chunks(CHUNK_ROWS)]))
        name = "RidgeCV"
    elif len(np.unique(train.y[rows])) < 2:
        return None
    else:
        model = LogisticRegression(max_iter=2000).fit(x_train, train.y[rows])
        output = np.zeros((len(test), len(prepared.preprocessor.classes)))
        for start, x in zip(range(0, len(test), CHUNK_ROWS), test.chunks(CHUNK_ROWS), strict=True):
            output[start : start + CHUNK_ROWS, model.classes_] = model.predict_proba(_design(x, encoder))
        name = "LogisticRegression"
    return {"name": name, "test": score(task, y_test, output)}
