"""The decision stage: after training, a classifier's probabilities are calibrated (temperature
scaling) and a binary classifier's decision threshold is tuned, both on the validation split.

Temperature scaling (Guo et al. 2017) divides the logits by one number fitted to minimise the
validation log loss: the ranking of rows, and so ROC AUC, is unchanged for a single network, while
the probabilities mean what they say. The threshold matters when the problem's metric is judged on
labels and the classes are unbalanced: F1 and balanced accuracy are rarely best at 0.5. Both are
recorded in model.json and used by `predict`, the server and the monitor; the test split, scored
afterwards, is the honest check of both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dlpipe import metrics
from dlpipe.model import Head

if TYPE_CHECKING:
    from dlpipe.prepare import Prepared
    from dlpipe.spec import ModelSpec, PipelineSpec

TUNED_METRICS = ("f1_macro", "balanced_accuracy")  # `threshold: auto` tunes for these; 0.5 suits the rest
MAX_CANDIDATES = 512
LOG_T_RANGE = (-3.0, 3.0)  # temperatures from 0.05 to 20


@dataclass
class Decision:
    """How a classifier turns logits into probabilities and labels."""

    temperature: float = 1.0
    threshold: float | None = None  # binary: positive at p >= threshold; None: the most probable class
    notes: dict[str, Any] = field(default_factory=dict)

    def head(self, kind: str) -> Head:
        return Head(kind, self.temperature)

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "threshold": self.threshold, **self.notes}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Decision:
        """A decision as model.json records it; a value no fit could give is refused by name."""
        data = data or {}
        temperature, threshold = data.get("temperature", 1.0), data.get("threshold")
        if not isinstance(temperature, int | float) or not 0 < temperature < math.inf:
            raise ValueError(f"decision.temperature must be a positive number; received {temperature!r}")
        if threshold is not None and (not isinstance(threshold, int | float) or not 0 < threshold < 1):
            raise ValueError(f"decision.threshold must be between 0 and 1; received {threshold!r}")
        return cls(float(temperature), None if threshold is None else float(threshold))


def decide(net: torch.nn.Module, head: Head, prepared: Prepared, spec: PipelineSpec, refit: bool) -> Decision:
    """The calibration and threshold fitted on validation; none after a refit, which trained on it."""
    if refit:
        return Decision(notes={"not_fitted": "the refit model trained on the validation split"})
    return fit_decision(net, head, prepared, spec.problem.metric, spec.model)


def describe(decision: Decision) -> list[str]:
    """One line each for a temperature and a threshold that differ from the untouched network's."""
    lines = []
    loss = decision.notes.get("validation_log_loss")
    if decision.temperature != 1.0 and loss:
        lines.append(
            f"calibrated: temperature {decision.temperature:.3g}, validation log loss {loss['before']:.4g} -> "
            f"{loss['after']:.4g}"
        )
    if decision.threshold is not None:
        tuned = next((v for k, v in decision.notes.items() if k.startswith("validation_") and "at_0.5" in v), None)
        gain = f", validation {tuned['at_0.5']:.4g} -> {tuned['at_threshold']:.4g}" if tuned else ""
        lines.append(f"decision threshold {decision.threshold:.3g}{gain}")
    return lines


def fit_decision(net: torch.nn.Module, head: Head, prepared: Prepared, metric: str, spec: ModelSpec) -> Decision:
    """The temperature and threshold `spec` asks for, fitted on the validation split."""
    from dlpipe.evaluate import predict_outputs

    if head.kind == "regression":
        return Decision()
    validation = prepared.splits["validation"]
    y = np.asarray(validation.y).astype(np.int64)
    logits = torch.from_numpy(predict_outputs(net, head, validation.loader(head.target_dtype), raw=True)).float()
    decision = Decision(notes={"fitted_on": f"validation ({len(y)} rows)"})
    if spec.calibrate:
        before = _log_loss(head.kind, logits, y, 1.0)
        decision.temperature = fit_temperature(head.kind, logits, y)
        after = _log_loss(head.kind, logits, y, decision.temperature)
        decision.notes["validation_log_loss"] = {"before": round(before, 6), "after": round(after, 6)}
    if head.kind == "binary":
        proba = decision.head(head.kind).output(logits).numpy().astype(np.float64)
        if isinstance(spec.threshold, float):
            decision.threshold = spec.threshold
        elif metric in TUNED_METRICS:
            decision.threshold, at_half, best = fit_threshold(proba, y, metrics.get(metric))
            decision.notes[f"validation_{metric}"] = {"at_0.5": round(at_half, 6), "at_threshold": round(best, 6)}
    return decision


def _log_loss(kind: str, logits: torch.Tensor, y: np.ndarray, temperature: float) -> float:
    proba = Head(kind, temperature).output(logits).numpy().astype(np.float64)
    return metrics.get("log_loss").fn(y, proba)


def fit_temperature(kind: str, logits: torch.Tensor, y: np.ndarray) -> float:
    """The temperature minimising the validation log loss (1 when nothing beats it)."""
    from scipy.optimize import minimize_scalar

    if len(np.unique(y)) < 2:
        return 1.0  # one class present: any sharpening looks better and means nothing
    found = minimize_scalar(
        lambda log_t: _log_loss(kind, logits, y, math.exp(log_t)),
        bounds=LOG_T_RANGE,
        method="bounded",
        options={"xatol": 1e-4},
    )
    temperature = round(math.exp(found.x), 6)
    if _log_loss(kind, logits, y, temperature) >= _log_loss(kind, logits, y, 1.0):
        return 1.0
    return temperature if temperature >= 1.0 else _supported_sharpening(kind, logits, y, temperature)


def _confidence(kind: str, logits: torch.Tensor, temperature: float) -> float:
    return float(Head(kind, temperature).output(logits).max(1).values.mean())


def _supported_sharpening(kind: str, logits: torch.Tensor, y: np.ndarray, temperature: float) -> float:
    """A temperature below 1 sharpens the probabilities, and a validation split with few or no
    mistakes always asks for more: on wine's 27 rows, all right, the fit went to 0.2 and one wrong
    test row then cost several nats. So sharpening stops where the mean confidence reaches the
    accuracy the split can support, Laplace's (right + 1) / (rows + 2)."""
    proba = Head(kind).output(logits)
    right = int((proba.argmax(1).numpy() == y).sum())
    ceiling = (right + 1) / (len(y) + 2)
    if _confidence(kind, logits, temperature) <= ceiling:
        return temperature
    if _confidence(kind, logits, 1.0) >= ceiling:
        return 1.0  # already as sure as the split allows: no sharpening at all
    low, high = temperature, 1.0  # confidence falls as the temperature rises
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if _confidence(kind, logits, middle) > ceiling else (low, middle)
    return round(high, 6)


def fit_threshold(proba: np.ndarray, y: np.ndarray, metric: metrics.Metric) -> tuple[float, float, float]:
    """(threshold, the metric at 0.5, the metric at the threshold): the cut between two neighbouring
    validation probabilities that scores best; of equal ones, the nearest to 0.5."""
    at_half = metric.score(y, proba, 0.5)
    values = np.unique(proba[:, 1])
    cuts = (values[1:] + values[:-1]) / 2
    if len(cuts) > MAX_CANDIDATES:
        cuts = np.unique(np.quantile(cuts, np.linspace(0, 1, MAX_CANDIDATES)))
    best_cut, best = 0.5, at_half
    for cut in cuts:
        value = metric.score(y, proba, float(cut))
        if metric.better(value, best) or (value == best and abs(cut - 0.5) < abs(best_cut - 0.5)):
            best_cut, best = float(cut), value
    return best_cut, at_half, best
