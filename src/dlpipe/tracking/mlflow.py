"""A run logged to MLflow through its client API (no global `mlflow.start_run` state, so two runs
in one process never log into each other): the resolved config as parameters, each epoch's losses,
validation metric and learning rate at step = epoch, the final validation and test metrics, the
goal as a tag, report.html and the model folder as artifacts, and the trials of a search as
nested runs."""

from __future__ import annotations

import csv
import logging
import re
import time
from pathlib import Path
from typing import Any

from dlpipe.errors import ConfigError, TrackingError
from dlpipe.redact import redacted, shown_url
from dlpipe.tracking import first_line

BATCH = 100  # MLflow's limit on parameters per log_batch call
MAX_VALUE = 6000  # MLflow's limit on a parameter's length
FILES = ("report.html", "pipeline.yaml", "metrics.json", "history.jsonl")
EPOCH_KEYS = ("train_loss", "validation_loss", "lr")


def _client_classes() -> tuple[Any, Any, Any, Any]:
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError(
            "logging to MLflow needs MLflow installed", where="tracking.mlflow", fix="pip install mlflow-skinny"
        ) from None
    return MlflowClient, Metric, Param, RunTag


def key(name: str) -> str:
    """A name MLflow accepts as a parameter or metric key (column names may hold any character)."""
    return re.sub(r"[^\w.\- /]", "_", name)[:250]


class MlflowTracker:
    def __init__(self, uri: str, experiment: str) -> None:
        from dlpipe.spec.monitoring import expand

        self.client_class, self.Metric, self.Param, self.RunTag = _client_classes()
        self.uri = expand(uri, "tracking.mlflow") or uri
        self.experiment = experiment
        self.client: Any = None
        self.run_id: str | None = None
        self.metric = "metric"

    def start(self, folder: Path, spec: Any) -> str:
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its database set-up talks at INFO
        self.metric = spec.problem.metric
        try:
            self.client = self.client_class(tracking_uri=self.uri)
            experiment = self._experiment()
            self.run_id = self._run(experiment, folder)
            from dlpipe import __version__
            from dlpipe.runs import flatten, shown

            config = flatten(redacted(spec.model_dump(mode="json", exclude_none=True)))
            params = [self.Param(key(k), shown(v)[:MAX_VALUE]) for k, v in config.items()]
            tags = [self.RunTag("dlpipe.version", __version__), self.RunTag("dlpipe.run_folder", str(folder.resolve()))]
            for i in range(0, len(params), BATCH):
                self.client.log_batch(self.run_id, params=params[i : i + BATCH], tags=tags if i == 0 else [])
        except Exception as exc:
            shown = shown_url(self.uri)
            raise TrackingError(
                f"cannot log to MLflow at {shown}: {type(exc).__name__}: {first_line(exc).replace(self.uri, shown)}",
                where="tracking.mlflow",
            ) from None
        return f"tracking: MLflow at {shown_url(self.uri)}, experiment {self.experiment!r}, run {self.run_id}"

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:///"):  # artifacts beside the database, not in the working folder
            location = (Path(self.uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
        return self.client.create_experiment(self.experiment, artifact_location=location)

    def _run(self, experiment: str, folder: Path) -> str:
        """The MLflow run of this run folder: a resumed run carries on in the run it started."""
        quoted = str(folder.resolve()).replace("'", "\\'")
        earlier = self.client.search_runs([experiment], f"tags.`dlpipe.run_folder` = '{quoted}'", max_results=1)
        if earlier:
            self.client.update_run(earlier[0].info.run_id, status="RUNNING")
            return earlier[0].info.run_id
        return self.client.create_run(experiment, run_name=folder.name).info.run_id

    def epoch(self, record: dict[str, Any]) -> None:
        now, step = int(time.time() * 1000), int(record["epoch"])
        values = {k: record.get(k) for k in EPOCH_KEYS}
        values[f"validation_{record.get('metric') or self.metric}"] = record.get("validation")
        metrics = [self.Metric(key(k), float(v), now, step) for k, v in values.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, folder: Path, metrics: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        final = {f"test_{k}": v for k, v in metrics.get("test", {}).items()}
        final |= {f"best_validation_{k}": v for k, v in metrics.get("validation", {}).items()}
        final |= {f"baseline_test_{k}": v for k, v in (metrics.get("baseline") or {}).get("test", {}).items()}
        final |= {k: metrics.get(k) for k in ("best_epoch", "epochs_run")}
        final |= {f"seconds_{k}": v for k, v in (metrics.get("seconds") or {}).items()}
        logged = [self.Metric(key(k), float(v), now, 0) for k, v in final.items() if isinstance(v, int | float)]
        goal = metrics.get("goal", {})
        verdict = ("pass" if goal["passed"] else "fail") if goal.get("checks") else "none"
        tags = [self.RunTag("goal", verdict), self.RunTag("tuned", str("tuning" in metrics).lower())]
        for i in range(0, len(logged), 1000):
            self.client.log_batch(self.run_id, metrics=logged[i : i + 1000], tags=tags if i == 0 else [])
        for name in FILES:
            if (folder / name).exists():
                self.client.log_artifact(self.run_id, str(folder / name))
        self.client.log_artifacts(self.run_id, str(folder / "model"), "model")
        if (folder / "tuning" / "trials.csv").exists():
            self._trials(folder / "tuning" / "trials.csv")
        self.client.set_terminated(self.run_id, "FINISHED")

    def _trials(self, path: Path) -> None:
        """Each trial of the search as a run nested under this one: its parameters and score."""
        experiment = self.client.get_run(self.run_id).info.experiment_id
        fixed = {"number", "state", "value", "epochs", "seconds", "best_epoch", "repeat_of", "error"}
        now = int(time.time() * 1000)
        for row in csv.DictReader(path.open()):
            tags = {"mlflow.parentRunId": self.run_id, "state": row["state"]}
            child = self.client.create_run(experiment, run_name=f"trial {row['number']}", tags=tags).info.run_id
            params = [self.Param(key(k), v[:MAX_VALUE]) for k, v in row.items() if k not in fixed]
            scores = {f"validation_{self.metric}": row["value"], "epochs": row["epochs"], "seconds": row["seconds"]}
            logged = [self.Metric(key(k), float(v), now, 0) for k, v in scores.items() if v]
            self.client.log_batch(child, metrics=logged, params=params[:BATCH])
            self.client.set_terminated(child, "FAILED" if row["state"] == "fail" else "FINISHED")

    def fail(self, status: str) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status)
