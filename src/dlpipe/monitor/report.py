"""`dlpipe monitor`: the logged predictions of a model, in windows of `window` rows, against its
reference (training inputs with predictions) and its test metrics; alerts when a condition holds
in `consecutive` windows in a row."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlpipe.errors import ArtifactError
from dlpipe.monitor import columns as cols
from dlpipe.monitor.columns import EMBEDDED, Column
from dlpipe.monitor.drift import column_drift, embedding_drift
from dlpipe.monitor.embeddings import FILE, stored_matrix
from dlpipe.monitor.performance import estimate, live, worse_than
from dlpipe.monitor.quality import column_quality, known_levels
from dlpipe.sketch import histogram
from dlpipe.spec import Monitoring


@dataclass
class Baseline:
    """What a model folder says the world looked like: its reference sample, test metrics and goal."""

    name: str
    version: str
    task: str
    metric: str
    goal: dict[str, float]
    test: dict[str, float]
    classes: list[str] | None
    columns: list[Column]
    known: dict[str, set[str]]
    reference: pd.DataFrame
    settings: Monitoring
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: float | None = None  # a binary model's decision threshold (dlpipe.decide)

    def __post_init__(self) -> None:
        self._values: dict[str, cols.Values] = {}

    def reference_values(self, column: Column) -> cols.Values:
        """The reference's comparable values of a column, computed once for every window."""
        if column.name not in self._values:
            raw = self.reference.get(column.name, pd.Series([], dtype=object))
            self._values[column.name] = cols.values(column, raw)
        return self._values[column.name]

    @classmethod
    def from_folder(cls, model: str | Path) -> Baseline:
        from dlpipe.manifest import find_model_folder, read_manifest

        folder = find_model_folder(model)
        manifest = read_manifest(folder)  # checks every file's sha256, reference.parquet's too
        if "reference.parquet" not in manifest["files"]:
            raise ArtifactError("the model has no reference.parquet to monitor against", where=str(folder))
        pipeline, pre = manifest["pipeline"], manifest["preprocessor"]
        classes = pre.get("target_state", {}).get("classes") if pre["task"] == "classification" else None
        return cls(
            name=manifest["name"],
            version=str(manifest.get("version", "1")),
            task=pre["task"],
            metric=pipeline["problem"]["metric"],
            goal=pipeline["problem"].get("goal") or {},
            test=manifest.get("metrics", {}).get("test", {}),
            classes=classes,
            columns=[Column(c["name"], c["type"]) for c in pre["columns"]],
            known={c["name"]: known_levels(c.get("state", {})) for c in pre["columns"]},
            reference=pd.read_parquet(folder / "reference.parquet"),
            settings=Monitoring(**pipeline.get("monitoring", {})),
            embeddings=_embeddings(folder) if FILE in manifest["files"] else {},
            threshold=(manifest.get("decision") or {}).get("threshold"),
        )


def _embeddings(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / FILE))


def split_windows(rows: int, size: int) -> list[tuple[int, int]]:
    """Consecutive windows of `size` rows; a last window under half the size joins the one before."""
    bounds = [(start, min(start + size, rows)) for start in range(0, rows, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < size / 2:
        bounds[-2:] = [(bounds[-2][0], bounds[-1][1])]
    return bounds


def drift_table(baseline: Baseline, current: pd.DataFrame, absent: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per feature: drift against the reference, with its data quality."""
    out = {}
    for column in baseline.columns:
        reference, now = baseline.reference_values(column), cols.values(column, current[column.name])
        if column.type in EMBEDDED:
            reference_vectors = baseline.embeddings.get(column.name, np.zeros((0, 0)))
            out[column.name] = embedding_drift(reference_vectors, stored_matrix(current[column.name]))
        else:
            out[column.name] = column_drift(reference[0], now[0], column.numeric)
        out[column.name]["type"] = column.type
        out[column.name]["quality"] = column_quality(
            column, reference, now, absent.get(column.name, 0), baseline.known.get(column.name)
        )
    return out


def prediction_drift(baseline: Baseline, predictions: np.ndarray, probabilities: Any) -> dict[str, dict[str, Any]]:
    """The same tests on the predicted labels or values, and on each class's probability."""
    ref_pred, ref_proba = cols.reference_outputs(baseline.reference, baseline.classes)
    numeric = baseline.classes is None
    out = {"prediction": column_drift(ref_pred, predictions[~pd.isna(predictions)], numeric)}
    if baseline.classes and probabilities is not None:
        for i, name in enumerate(baseline.classes):
            current = probabilities[:, i]
            out[f"proba_{name}"] = column_drift(ref_proba[:, i], current[~np.isnan(current)], numeric=True)
    return out


def window_report(baseline: Baseline, rows: pd.DataFrame) -> dict[str, Any]:
    """Everything measured on one window of logged rows."""
    current, absent = cols.current_frame(rows, baseline.columns)
    predictions, probabilities = cols.outputs(rows, baseline.classes)
    features = drift_table(baseline, current, absent)
    judged = [f for f in features.values() if f["method"] is not None]
    drifted = sum(f["drift"] for f in judged)
    share = drifted / len(judged) if judged else 0.0
    performance = live(
        baseline.task, baseline.classes, predictions, probabilities, cols.labels(rows).tolist(), baseline.threshold
    )
    if baseline.classes and probabilities is not None:
        performance["estimated"] = estimate(probabilities, baseline.threshold)
    latency = rows["latency_ms"].dropna().to_numpy(dtype=float)
    return {
        "start": float(rows["time"].iloc[0]),
        "end": float(rows["time"].iloc[-1]),
        "rows": len(rows),
        "versions": sorted(set(rows["version"].astype(str))),
        "latency_ms": {
            "p50": float(np.percentile(latency, 50)) if len(latency) else None,
            "p95": float(np.percentile(latency, 95)) if len(latency) else None,
        },
        "features": features,
        "drifted": drifted,
        "drift_share": share,
        "dataset_drift": bool(judged) and share >= baseline.settings.drift_share,
        "prediction": prediction_drift(baseline, predictions, probabilities),
        "performance": performance,
        "histogram": _prediction_histogram(baseline, predictions),
    }


def _prediction_histogram(baseline: Baseline, predictions: np.ndarray) -> dict[str, Any]:
    """Shares of each predicted class (or of 20 bins of predicted values), reference and current."""
    if baseline.classes:
        ref = baseline.reference["prediction"].astype(str).to_numpy()
        cur = predictions.astype(str)
        return {
            "classes": {c: float(np.mean(cur == c)) for c in baseline.classes},
            "reference": {c: float(np.mean(ref == c)) for c in baseline.classes},
        }
    ref = baseline.reference["prediction"].to_numpy(dtype=float)
    cur = predictions.astype(float)
    edges = histogram(np.concatenate([ref, cur]), 20)[1]
    return {
        "edges": edges.tolist(),
        "reference": (histogram(ref, 20, edges[0], edges[-1])[0] / max(len(ref), 1)).tolist(),
        "current": (histogram(cur, 20, edges[0], edges[-1])[0] / max(len(cur), 1)).tolist(),
    }


def histograms(baseline: Baseline, rows: pd.DataFrame, bins: int = 20, top: int = 10) -> dict[str, Any]:
    """Reference against current, per feature: shares per bin (numbers) or per most common value."""
    current, _ = cols.current_frame(rows, baseline.columns)
    out = {}
    for column in baseline.columns:
        if column.type in EMBEDDED:
            continue
        ref, cur = baseline.reference_values(column)[0], cols.values(column, current[column.name])[0]
        if not len(ref) or not len(cur):
            continue
        if column.numeric:
            low, high = np.percentile(np.concatenate([ref, cur]), [0.5, 99.5])
            ref_counts, edges = histogram(np.clip(ref, low, high), bins, low, high)
            cur_counts = histogram(np.clip(cur, low, high), bins, low, high)[0]
            out[column.name] = {
                "edges": edges.tolist(),
                "reference": (ref_counts / len(ref)).tolist(),
                "current": (cur_counts / len(cur)).tolist(),
            }
        else:
            levels = pd.Series(np.concatenate([ref, cur])).value_counts().index[:top].tolist()
            out[column.name] = {
                "levels": levels,
                "reference": [float(np.mean(ref == v)) for v in levels],
                "current": [float(np.mean(cur == v)) for v in levels],
            }
    return out


def conditions(baseline: Baseline, window: dict[str, Any]) -> list[dict[str, Any]]:
    """What is wrong in one window: dataset drift, and live performance below the goal or the test."""
    found = []
    if window["dataset_drift"]:
        drifted = [name for name, f in window["features"].items() if f["drift"]]
        found.append(
            {
                "kind": "dataset_drift",
                "message": f"{len(drifted)} of {len(window['features'])} features drift: {', '.join(drifted[:8])}",
            }
        )
    performance, settings, metric = window["performance"], baseline.settings, baseline.metric
    value = performance["metrics"].get(metric)
    if performance["labelled"] >= settings.min_labels and value is not None:
        goal = baseline.goal.get(metric)
        if goal is not None and worse_than(metric, value, goal):
            found.append({"kind": "below_goal", "message": f"live {metric} {value:.4f} misses the goal {goal}"})
        test = baseline.test.get(metric)
        if worse_than(metric, value, test, settings.tolerance):
            found.append(
                {
                    "kind": "below_test",
                    "message": f"live {metric} {value:.4f} is worse than the test set's {test:.4f} "
                    f"by more than {settings.tolerance}",
                }
            )
    return found


def monitor(
    model: str | Path | Baseline,
    store: str | Any | None = None,
    since: float | None = None,
    window: int | None = None,
    notify: bool = True,
    windows: int = 50,
    all_versions: bool = False,
    webhook: str | None = None,
) -> dict[str, Any]:
    """The monitoring report of a model's logged predictions: per window and for the latest one.
    With `notify`, active alerts go to the configured webhook (its URL, which may hold a secret, is
    never part of the report). Only the latest `windows` windows are read: a store of months stays quick.
    Only rows this version answered count, unless `all_versions` (earlier versions are another model).
    `webhook` replaces the configured one (whose secret model.json keeps redacted unless it is a ${VAR})."""
    from dlpipe.monitor.store import Store
    from dlpipe.redact import shown_url

    baseline = model if isinstance(model, Baseline) else Baseline.from_folder(model)
    settings = baseline.settings
    url = store or settings.store
    if url is None:
        from dlpipe.errors import ConfigError

        raise ConfigError("no prediction store", where="monitoring.store", fix="pass --store URL")
    size = window or settings.window
    version = None if all_versions else baseline.version
    opened = Store(url) if isinstance(url, str) else url  # the server passes the store it writes to
    try:
        rows = _read(opened, baseline.name, since, windows * size, version)
    finally:
        if opened is not url:
            opened.dispose()
    bounds = split_windows(len(rows), size)
    reports = [window_report(baseline, rows.iloc[a:b]) for a, b in bounds]
    for item in reports:
        item["conditions"] = conditions(baseline, item)
    alerts = active_alerts(reports, settings.consecutive)
    latest = reports[-1] if reports else None
    report = {
        "model": baseline.name,
        "version": baseline.version,
        "store": shown_url(url) if isinstance(url, str) else url.url,
        "generated": time.time(),
        "rows": len(rows),
        "window": size,
        "metric": baseline.metric,
        "goal": baseline.goal,
        "test": baseline.test,
        "alerts": alerts,
        "features": {k: _brief(v) for k, v in latest["features"].items()} if latest else {},
        "prediction": latest["prediction"] if latest else {},
        "quality": {k: v["quality"] for k, v in latest["features"].items()} if latest else {},
        "performance": latest["performance"] if latest else {},
        "windows": reports,
        "histograms": histograms(baseline, rows.iloc[bounds[-1][0] : bounds[-1][1]]) if bounds else {},
    }
    if notify and alerts and (webhook or settings.webhook):
        from dlpipe.monitor.notify import send_webhook

        error = send_webhook(webhook or settings.webhook, report)
        report["webhook"] = {"delivered": error is None, "error": error}
    return report


def _read(store: Any, model: str, since: float | None, latest: int, version: str | None) -> pd.DataFrame:
    """The version's served answers; for a version only ever run in shadow mode, its shadow answers."""
    try:
        rows = store.predictions(model, since=since, latest=latest, version=version)
        if rows.empty and version is not None:
            rows = store.predictions(model, since=since, latest=latest, version=version, shadow=True)
        return rows
    except Exception as exc:
        raise store.failed(exc, "read") from None


def _brief(feature: dict[str, Any]) -> dict[str, Any]:
    keys = ("method", "score", "threshold", "drift", "psi", "type", "note")
    return {k: feature[k] for k in keys if k in feature}


def active_alerts(windows: list[dict[str, Any]], consecutive: int) -> list[dict[str, Any]]:
    """Conditions present in each of the last `consecutive` windows (the latest window's message)."""
    if len(windows) < consecutive:
        return []
    recent = windows[-consecutive:]
    kinds = set.intersection(*({c["kind"] for c in w["conditions"]} for w in recent))
    return [
        {**c, "windows": consecutive, "since": recent[0]["start"]}
        for c in recent[-1]["conditions"]
        if c["kind"] in kinds
    ]


def clean_json(value: Any) -> Any:
    """The report as strict JSON values: NaN as null, numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    value = cols.as_python(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
