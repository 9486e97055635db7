"""Evaluation: model outputs on a split, every metric of the task, and the data behind the plots."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dlpipe import metrics
from dlpipe.model import Head

if TYPE_CHECKING:
    from dlpipe.prepare import Prepared

EVAL_BATCH = 8192


def to_tensors(inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}


@torch.inference_mode()
def predict_outputs(
    model: torch.nn.Module, head: Head, inputs: dict[str, torch.Tensor] | Any, raw: bool = False
) -> np.ndarray:
    """Probabilities (classification) or standardised values (regression), in eval mode, batched.

    `inputs` are tensors, or a split's loader with `chunks(size)`.

    With `raw`, the network's logits before the head's output transform.
    """
    was_training = model.training
    model.eval()
    if isinstance(inputs, dict):
        n = len(next(iter(inputs.values())))
        parts = ({k: v[i : i + EVAL_BATCH] for k, v in inputs.items()} for i in range(0, n, EVAL_BATCH))
    else:  # a split's loader (Batches, CachedBatches) reads its own chunks
        parts = inputs.chunks(EVAL_BATCH)
    chunks = [model(part) for part in parts]
    model.train(was_training)
    logits = torch.cat(chunks)
    return (logits if raw else head.output(logits)).numpy().astype(np.float64)


def score(task: str, y: np.ndarray, output: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """Every metric of the task, rounded for humans but not beyond what matters."""
    return {k: round(v, 6) for k, v in metrics.compute_all(task, y, output, threshold).items()}


def details(
    task: str, y: np.ndarray, output: np.ndarray, classes: list[str] | None, threshold: float | None = None
) -> dict[str, Any]:
    """The confusion matrix and per-class figures (classification) or residual summary (regression)."""
    if task == "classification":
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        labels = np.arange(output.shape[1])
        predicted = metrics.predicted(output, threshold)
        precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
        return {
            "classes": classes,
            "curves": curves(y, output, classes),
            "confusion_matrix": confusion_matrix(y, predicted, labels=labels).tolist(),
            "per_class": {
                str(c): {
                    "precision": round(float(p), 6),
                    "recall": round(float(r), 6),
                    "f1": round(float(f), 6),
                    "support": int(s),
                }
                for c, p, r, f, s in zip(classes or labels, precision, recall, f1, support, strict=True)
            },
        }
    residual = np.asarray(output, float) - np.asarray(y, float)
    shown = np.sort(np.random.default_rng(0).permutation(len(y))[:POINTS])
    return {
        "residuals": {
            "mean": float(residual.mean()),
            "std": float(residual.std()),
            "max_abs": float(np.abs(residual).max()),
        },
        "scatter": {"actual": _rounded(np.asarray(y, float)[shown]), "predicted": _rounded(np.asarray(output)[shown])},
    }


POINTS = 500  # points kept for a plot: enough to see, small enough for metrics.json
CURVE_POINTS = 101


def curves(y: np.ndarray, proba: np.ndarray, classes: list[str] | None) -> dict[str, Any]:
    """ROC and precision-recall curves (one-vs-rest, at most 10 classes) and a 10-bin calibration of
    the predicted class's probability, thinned for plotting."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    names = list(classes or range(proba.shape[1]))
    shown = [1] if proba.shape[1] == 2 else list(range(min(proba.shape[1], 10)))
    out: dict[str, Any] = {"roc": {}, "pr": {}}
    for c in shown:
        positive = (y == c).astype(int)
        if positive.min() == positive.max():
            continue  # one class only: no curve
        fpr, tpr, _ = roc_curve(positive, proba[:, c])
        precision, recall, _ = precision_recall_curve(positive, proba[:, c])
        out["roc"][str(names[c])] = {"fpr": _thin(fpr), "tpr": _thin(tpr)}
        out["pr"][str(names[c])] = {"recall": _thin(recall), "precision": _thin(precision)}
    confidence, hit = proba.max(1), (proba.argmax(1) == y).astype(float)
    bins = np.minimum((confidence * 10).astype(int), 9)
    out["calibration"] = [
        {
            "predicted": float(confidence[bins == b].mean()),
            "observed": float(hit[bins == b].mean()),
            "rows": int((bins == b).sum()),
        }
        for b in range(10)
        if (bins == b).any()
    ]
    return out


def _thin(values: np.ndarray) -> list[float]:
    index = np.unique(np.linspace(0, len(values) - 1, min(len(values), CURVE_POINTS)).astype(int))
    return _rounded(values[index])


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]


def split_targets(prepared: Prepared, name: str) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """(targets in the user's units, a function mapping network outputs to those units)."""
    preprocessor = prepared.preprocessor
    y = prepared.splits[name].y
    if preprocessor.classes:
        return y, lambda out: out
    return preprocessor.decode_regression(y), preprocessor.decode_regression


def evaluate_split(
    net: torch.nn.Module, head: Head, prepared: Prepared, name: str, threshold: float | None = None
) -> dict[str, Any]:
    """Every metric of the task and the details (confusion matrix, residuals) on one split; a binary
    model's labels decide at `threshold` when given. For the test split also its worst rows
    (`examples`, what examples.json holds)."""
    task, classes = prepared.preprocessor.task, prepared.preprocessor.classes
    y, decode = split_targets(prepared, name)
    split = prepared.splits[name]
    output = decode(predict_outputs(net, head, split.loader(head.target_dtype)))
    result = {"metrics": score(task, y, output, threshold), "details": details(task, y, output, classes, threshold)}
    if name == "test" and hasattr(split, "inputs"):  # the report's worst rows (a split streamed to disk has none)
        from dlpipe.report.examples import record

        columns = prepared.preprocessor.columns
        result["examples"] = record(y, output, classes, split.frame, split.inputs, columns, threshold)
    return result


REFERENCE_ROWS = 2000  # the training sample kept with the model for monitoring


def evaluate_splits(
    net: torch.nn.Module,
    head: Head,
    prepared: Prepared,
    sample_rows: int = REFERENCE_ROWS,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Metrics and details on validation and test (the test split's only use), and a training sample."""
    classes = prepared.preprocessor.classes
    results: dict[str, Any] = {
        name: evaluate_split(net, head, prepared, name, threshold) for name in ("validation", "test")
    }
    train = prepared.splits["train"]
    rows = np.sort(np.random.default_rng(0).permutation(len(train))[:sample_rows])  # files are often sorted
    _, decode = split_targets(prepared, "train")
    frame, inputs = train.sample(rows)
    output = decode(predict_outputs(net, head, to_tensors(inputs)))
    sample: dict[str, Any] = {"frame": frame}
    from dlpipe.monitor.embeddings import embed_inputs

    # text, image and audio drift is measured on the encoders' outputs: keep the sample's
    sample["embeddings"] = embed_inputs(net, prepared.preprocessor, inputs)
    if classes:
        sample["prediction"] = np.asarray(classes, dtype=object)[metrics.predicted(output, threshold)]
        sample["probabilities"] = {c: output[:, i] for i, c in enumerate(classes)}
    else:
        sample["prediction"] = output
    results["train_sample"] = sample
    return results
