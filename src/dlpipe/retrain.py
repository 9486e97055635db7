"""`dlpipe retrain`: the champion/challenger loop.

The data source is read again (new rows included) and the predictions whose feedback labels have
arrived are added as rows. The newest `retrain.holdout` share of those rows (feedback rows are the
newest, by time) is set aside; a challenger is trained on the rest by the usual pipeline; champion
and challenger are scored on the same holdout. The challenger becomes champion only when it meets
the goal there and beats the champion by `retrain.min_improvement`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlpipe.errors import ArtifactError, DataError

EXIT_KEPT = 5


@dataclass
class Outcome:
    promoted: bool
    reason: str
    comparison: dict[str, Any]
    folder: Path


def feedback_rows(store_url: str, name: str, target: str) -> pd.DataFrame:
    """Logged predictions whose label arrived, as table rows (inputs + target), oldest first.
    Rows whose inputs were stored as hashes (images, audio, long texts) cannot be trained on."""
    from dlpipe.monitor.store import Store

    with Store(store_url) as store:
        logged = store.predictions(name)  # served answers only: a shadow's rows would count twice
    logged = logged[logged["label"].notna()]
    if logged.empty:
        return pd.DataFrame()
    records = [json.loads(text) for text in logged["inputs"]]
    usable = [not any(isinstance(v, dict) and "text" not in v for v in r.values()) for r in records]
    rows = [
        {k: (v["text"] if isinstance(v, dict) else v) for k, v in r.items()}
        for r, ok in zip(records, usable, strict=True)
        if ok
    ]
    frame = pd.DataFrame.from_records(rows)
    frame[target] = [json.loads(label) for label, ok in zip(logged["label"], usable, strict=True) if ok]
    return frame


def score_on(model_folder: Path, holdout: pd.DataFrame, target: str, task: str) -> dict[str, float]:
    """Every metric of the task for one model on the holdout rows (classes matched by name)."""
    from dlpipe import metrics
    from dlpipe.package import load_model
    from dlpipe.prepare.target import clean_label

    model = load_model(model_folder)
    predicted = model.predict(holdout.drop(columns=[target]))
    if task == "regression":
        y = pd.to_numeric(holdout[target], errors="coerce").to_numpy(dtype=float)
        known = ~np.isnan(y)
        return metrics.compute_all(task, y[known], predicted["prediction"].to_numpy(dtype=float)[known])
    labels = [clean_label(v) for v in holdout[target]]
    classes = sorted({*model.classes, *(str(v) for v in labels if v is not pd.NA)})
    proba = np.zeros((len(holdout), len(classes)))
    for c in model.classes:
        proba[:, classes.index(c)] = predicted[f"proba_{c}"].to_numpy(dtype=float)
    y = np.array([classes.index(str(v)) if v is not pd.NA else -1 for v in labels])
    known = y >= 0
    return metrics.compute_all(task, y[known], proba[known], model.threshold)


def retrain(
    pipeline: str | Path, run_dir: str | Path = "runs", store: str | None = None, reporter: Any = None
) -> Outcome:
    """Train a challenger on fresh data and feedback; promote it only if it is better on the newest rows."""
    from dlpipe import metrics
    from dlpipe.collect import collect
    from dlpipe.pipeline import Pipeline
    from dlpipe.prepare.target import resolve_target
    from dlpipe.registry import pipeline_registry
    from dlpipe.rundir import write_json

    spec = Pipeline.from_yaml(pipeline).spec
    registry = pipeline_registry(spec, run_dir)
    champion = _champion(registry, spec.name, pipeline)
    source = collect(spec.data.source).frame
    target = resolve_target(source, spec.problem.target)
    url = store or spec.monitoring.store
    labelled = feedback_rows(url, spec.name, target) if spec.retrain.feedback and url else pd.DataFrame()
    combined = pd.concat([source, labelled], ignore_index=True) if len(labelled) else source
    cut = len(combined) - max(1, math.ceil(len(combined) * spec.retrain.holdout))
    train, holdout = combined.iloc[:cut].reset_index(drop=True), combined.iloc[cut:].reset_index(drop=True)
    if len(holdout) < 10:
        raise DataError(f"the holdout has {len(holdout)} rows; retraining needs at least 10", where="retrain.holdout")

    start = champion.folder if spec.retrain.warm_start else None
    result = Pipeline(spec, data=train).run(run_dir, reporter=reporter, warm_start=start)
    task, metric = spec.problem.task, metrics.get(spec.problem.metric)
    scores = {
        "champion": score_on(champion.folder, holdout, target, task),
        "challenger": score_on(result.model_folder, holdout, target, task),
    }
    old, new = scores["champion"][metric.name], scores["challenger"][metric.name]
    gain = (new - old) if metric.greater_is_better else (old - new)
    goal = metrics.check_goal(spec.problem.goal, scores["challenger"])
    promoted = result.passed and goal["passed"] and gain >= spec.retrain.min_improvement
    if not goal["passed"] or not result.passed:
        reason = "the challenger misses the goal"
    elif gain < spec.retrain.min_improvement:
        reason = f"the challenger beats the champion by {gain:.4f} {metric.name}; {spec.retrain.min_improvement} needed"
    else:
        reason = f"the challenger beats the champion by {gain:.4f} {metric.name} and meets the goal"
    comparison = {
        "metric": metric.name,
        "champion": {"version": champion.version, "holdout": scores["champion"]},
        "challenger": {"run": str(result.folder), "holdout": scores["challenger"], "test": result.metrics["test"]},
        "holdout_rows": len(holdout),
        "training_rows": len(train),
        "feedback_rows": len(labelled),
        "warm_start": spec.retrain.warm_start,
        "gain": gain,
        "min_improvement": spec.retrain.min_improvement,
        "promoted": promoted,
        "reason": reason,
    }
    if result.passed:  # a challenger that meets its goal is kept in the registry either way
        version = registry.register(
            result.model_folder, data_fingerprint=result.data_fingerprint, parent=champion.version, run=result.folder
        )
        comparison["challenger"]["version"] = version.version
        registry.set_alias(spec.name, version.version, "champion" if promoted else "challenger")
    write_json(result.folder / "comparison.json", comparison)
    return Outcome(promoted, reason, comparison, result.folder)


def _champion(registry: Any, name: str, pipeline: str | Path) -> Any:
    """The registry's champion of `name`; an error saying how to get one when there is none."""
    champion = registry.alias(name, "champion")
    if champion is None:
        raise ArtifactError(f"{name} has no champion", where=str(registry.root), fix=f"dlpipe run {pipeline} first")
    return champion


def champion_folder(pipeline: str | Path, run_dir: str | Path) -> Path:
    """The folder of the pipeline's champion in its registry."""
    from dlpipe.pipeline import Pipeline
    from dlpipe.registry import pipeline_registry

    spec = Pipeline.from_yaml(pipeline).spec
    return _champion(pipeline_registry(spec, run_dir), spec.name, pipeline).folder


def watch(
    pipeline: str | Path,
    every: float,
    run_dir: str | Path = "runs",
    iterations: int | None = None,
    say: Any = print,
) -> list[dict[str, Any]]:
    """Monitor the champion every `every` seconds; on an alert, retrain (again only once more labels
    have arrived). Returns what each round did."""
    import time

    from dlpipe.monitor.report import monitor
    from dlpipe.monitor.store import Store
    from dlpipe.pipeline import Pipeline

    url = Pipeline.from_yaml(pipeline).spec.monitoring.store
    rounds: list[dict[str, Any]] = []
    labels_at_retrain = -1
    while iterations is None or len(rounds) < iterations:
        if rounds:
            time.sleep(every)
        folder = champion_folder(pipeline, run_dir)
        report = monitor(folder)
        labelled = _labels_stored(Store, url)  # every label ever stored, not a window's share of them
        done: dict[str, Any] = {"time": time.time(), "champion": str(folder), "alerts": report["alerts"]}
        if report["alerts"] and labelled > labels_at_retrain:
            say(f"alerts: {', '.join(a['kind'] for a in report['alerts'])}: retraining")
            outcome = retrain(pipeline, run_dir)
            labels_at_retrain = labelled
            done["retrain"] = {"promoted": outcome.promoted, "reason": outcome.reason}
            say(("promoted: " if outcome.promoted else "kept the champion: ") + outcome.reason)
        elif report["alerts"]:
            say("alerts, but no new labels since the last retrain: waiting")
        else:
            say(f"healthy: {report['rows']} predictions, no alert")
        rounds.append(done)
    return rounds


def _labels_stored(store_class: Any, url: str | None) -> int:
    if url is None:
        return 0
    with store_class(url) as store:
        return store.feedback_count()
