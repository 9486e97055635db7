"""Experiment tracking: a run also logs itself to MLflow (`tracking.mlflow`) or TensorBoard
(`tracking.tensorboard`).

The pipeline calls `Tracking` at three points: when the run folder exists (`started`), after each
epoch's history.jsonl line (through the reporter it watches), and at the end (`finished`, or
`failed`). Each backend is a `Tracker`; adding one means a module and a line in `Tracking.open`.
A backend that cannot be imported or reached when the run starts stops the run with a clear error
before any training; one that fails later costs a warning, never the finished model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dlpipe.pipeline import Reporter, RunResult
    from dlpipe.spec import PipelineSpec


class Tracker(Protocol):
    """One tracking backend."""

    def start(self, folder: Path, spec: PipelineSpec) -> str: ...  # a line saying where it logs
    def epoch(self, record: dict[str, Any]) -> None: ...  # a history.jsonl line
    def finish(self, folder: Path, metrics: dict[str, Any]) -> None: ...
    def fail(self, status: str) -> None: ...  # FAILED, or KILLED for an interrupt


class Tracking:
    """The trackers a pipeline file asks for, fed the run's events."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers
        self.live = False  # epochs were logged as they ended
        self.reporter: Reporter | None = None

    @classmethod
    def open(cls, spec: PipelineSpec) -> Tracking:
        """The spec's trackers, their libraries imported now: a missing one is a ConfigError at once."""
        cfg = spec.tracking
        trackers: list[Tracker] = []
        if cfg is not None and cfg.mlflow:
            from dlpipe.tracking.mlflow import MlflowTracker

            trackers.append(MlflowTracker(cfg.mlflow, cfg.experiment or spec.name))
        if cfg is not None and cfg.tensorboard:
            from dlpipe.tracking.tensorboard import TensorboardTracker

            trackers.append(TensorboardTracker(cfg.tensorboard))
        return cls(trackers)

    def watch(self, reporter: Reporter) -> Reporter:
        """The reporter, with every epoch also sent to the trackers (the loop reports each epoch right
        after writing its history.jsonl line)."""
        self.reporter = reporter
        return _Watching(reporter, self) if self.trackers else reporter

    def started(self, folder: Path, spec: PipelineSpec) -> None:
        for tracker in self.trackers:
            where = tracker.start(folder, spec)
            if self.reporter is not None:
                self.reporter.info(where)

    def epoch(self, record: dict[str, Any]) -> None:
        self.live = True
        self._each("epoch", record)

    def finished(self, result: RunResult) -> None:
        """The final metrics and files; a search's epochs (its best trial's, in history.jsonl) first,
        since its trials train elsewhere. A resumed run's earlier epochs were logged live by the
        process it resumes: the tracking section is part of the fingerprint resuming checks."""
        history = result.folder / "history.jsonl"
        if not self.live and history.exists():
            for line in history.read_text().splitlines():
                self._each("epoch", json.loads(line))
        self._each("finish", result.folder, result.metrics)

    def failed(self, error: BaseException) -> None:
        self._each("fail", "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # the run and its model stand; the tracker stops here
                self.trackers.remove(tracker)
                if self.reporter is not None:
                    name = type(tracker).__name__.removesuffix("Tracker")
                    self.reporter.info(f"warning: {name} tracking stopped ({type(exc).__name__}: {first_line(exc)})")


class _Watching:
    """A reporter that also hands each epoch to the trackers."""

    def __init__(self, reporter: Reporter, tracking: Tracking) -> None:
        self._reporter = reporter
        self._tracking = tracking

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reporter, name)

    def epoch(self, record: dict[str, Any], epochs: int) -> None:
        self._tracking.epoch(record)
        self._reporter.epoch(record, epochs)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
