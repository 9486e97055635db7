"""Run folders read back: what `dlpipe runs list` lists and `dlpipe runs compare` sets side by side.

Everything comes from a run folder's own files (`pipeline.yaml`, `metrics.json`, `history.jsonl`,
`checkpoint.safetensors`, `tuning/`), so runs of any age can be listed and compared. Nothing here
prints: the CLI (`cli_runs.py`) and the HTML page (`report/compare.py`) show what these return.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from dlpipe.errors import ArtifactError
from dlpipe.rundir import resumable

COMPLETE, INTERRUPTED, FAILED, UNREADABLE = "complete", "interrupted", "failed", "unreadable"
SPLITS = ("validation", "test")


@dataclass
class Run:
    """One run folder: its identity, state, resolved config, metrics and epoch history."""

    folder: Path
    name: str
    run_id: str
    started: datetime
    status: str
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def metric(self) -> str | None:
        """The problem's metric: what early stopping, tuning and the goal judge by."""
        return self.metrics.get("metric") or self.config.get("problem", {}).get("metric")

    @property
    def passed(self) -> bool | None:
        """The goal's verdict on the test set; None when unfinished or no goal was set."""
        goal = self.metrics.get("goal") or {}
        return bool(goal["passed"]) if goal.get("checks") else None

    @property
    def tuned(self) -> bool:
        return "tuning" in self.metrics or bool(self.config.get("tuning"))

    @property
    def seconds(self) -> float | None:
        stages = self.metrics.get("seconds")
        return round(sum(stages.values()), 1) if stages else None

    def score(self, split: str, name: str | None = None) -> float | None:
        """A metric on a split (the problem's metric by default); None when absent or undefined."""
        value = self.metrics.get(split, {}).get(name or self.metric or "")
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

    def summary(self) -> dict[str, Any]:
        """The row `dlpipe runs list --json` prints."""
        return {
            "name": self.name,
            "run_id": self.run_id,
            "folder": str(self.folder),
            "started": self.started.isoformat(timespec="seconds"),
            "status": self.status,
            "metric": self.metric,
            "validation": self.score("validation"),
            "test": self.score("test"),
            "passed": self.passed,
            "tuned": self.tuned,
            "epochs": self.metrics.get("epochs_run"),
            "seconds": self.seconds,
        }


def load_run(folder: Path, *, history: bool = True) -> Run:
    """A run folder read back. A folder without metrics.json did not finish: `interrupted` when it
    left a checkpoint or a tuning study that `dlpipe run --resume` continues, else `failed`."""
    folder = Path(folder)
    if not (folder / "pipeline.yaml").is_file():
        raise ArtifactError("is not a run folder (no pipeline.yaml)", where=str(folder))
    try:
        config = yaml.safe_load((folder / "pipeline.yaml").read_text()) or {}
        metrics = _json(folder / "metrics.json")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ArtifactError(f"unreadable run file: {exc}", where=str(folder)) from None
    if metrics is not None:
        status = COMPLETE
    elif resumable(folder):
        status = INTERRUPTED
    else:
        status = FAILED
    lines = (
        (folder / "history.jsonl").read_text().splitlines() if history and (folder / "history.jsonl").exists() else []
    )
    return Run(
        folder=folder,
        name=str(config.get("name") or folder.parent.name),
        run_id=folder.name,
        started=_started(folder),
        status=status,
        config=config,
        metrics=metrics or {},
        history=_records(lines, folder),
    )


def _records(lines: list[str], folder: Path) -> list[dict[str, Any]]:
    """history.jsonl's records; a last line cut short (a run killed, or a full disk, mid-write) is left out."""
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if number == len(lines):
                break
            raise ArtifactError(f"history.jsonl line {number} is not JSON", where=str(folder)) from None
    return records


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _started(folder: Path) -> datetime:
    """The time in the run id (`20261124-055933-adb5`), else the folder's modification time."""
    try:
        return datetime.strptime(folder.name[:15], "%Y%m%d-%H%M%S")
    except ValueError:
        return datetime.fromtimestamp(folder.stat().st_mtime)


def list_runs(run_dir: str | Path) -> list[Run]:
    """Every run folder under `run_dir/<name>/<run-id>/`, newest first."""
    root = Path(run_dir)
    if not root.is_dir():
        raise ArtifactError("no such run folder", where=str(root), fix="pass --run-dir where `dlpipe run` wrote runs")
    folders = [p for p in root.glob("*/*") if (p / "pipeline.yaml").is_file()]
    runs = [_listed(p) for p in folders]
    return sorted(runs, key=lambda r: (r.started, r.run_id), reverse=True)


def _listed(folder: Path) -> Run:
    """A run for the list; one whose files cannot be read is listed as such rather than hiding the rest."""
    try:
        return load_run(folder, history=False)
    except ArtifactError:
        return Run(folder, folder.parent.name, folder.name, _started(folder), UNREADABLE, {})


def find_run(reference: str, run_dir: str | Path) -> Path:
    """A run folder from a path, `NAME/RUN_ID` under `run_dir`, or a run id alone when it is unique."""
    for candidate in (Path(reference), Path(run_dir) / reference):
        if (candidate / "pipeline.yaml").is_file():
            return candidate
    matches = [p for p in Path(run_dir).glob(f"*/{reference}") if (p / "pipeline.yaml").is_file()]
    if len(matches) == 1:
        return matches[0]
    why = f"{len(matches)} runs have that id" if matches else f"neither a run folder nor NAME/RUN_ID under {run_dir}"
    raise ArtifactError(why, where=reference, fix="`dlpipe runs list` shows the runs and their ids")


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """`{"training": {"epochs": 8}}` -> `{"training.epochs": 8}`; lists stay whole values."""
    if not isinstance(config, dict) or (prefix and not config):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


MISSING = object()  # a key one run's config does not have


def config_diff(configs: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The dotted keys whose values differ between configs, in first-seen order, with each config's
    value (`MISSING` where a config lacks the key)."""
    flats = [flatten(c) for c in configs]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    rows = []
    for key in keys:
        values = [flat.get(key, MISSING) for flat in flats]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows


def shown(value: Any) -> str:
    """A config value as the YAML file would write it: text as is, the rest as JSON (true, [1, 2])."""
    if value is MISSING:
        return "absent"
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class MetricRow:
    """One metric on one split across runs; `best` are the indices of the runs that score best."""

    split: str
    name: str
    values: list[float | None]
    best: list[int]


def metric_rows(runs: list[Run]) -> list[MetricRow]:
    """Validation and test metrics side by side, the best per the metric's direction marked (none
    marked when all runs tie)."""
    from dlpipe.metrics import get

    rows = []
    for split in SPLITS:
        names = dict.fromkeys(n for r in runs for n in r.metrics.get(split, {}))
        for name in names:
            values = [r.score(split, name) for r in runs]
            known = [v for v in values if v is not None]
            best: list[int] = []
            if len(set(known)) > 1:
                top = max(known) if get(name).greater_is_better else min(known)
                best = [i for i, v in enumerate(values) if v == top]
            rows.append(MetricRow(split, name, values, best))
    return rows


def curves(run: Run) -> dict[str, list[float | None]]:
    """Validation loss and metric per epoch, as history.jsonl has them."""
    epochs = [h for h in run.history if "epoch" in h]
    return {
        "validation_loss": [h.get("validation_loss") for h in epochs],
        "validation": [h.get("validation") for h in epochs],
    }


def label(index: int) -> str:
    """A, B, ... Z, then R27...: short names for runs in tables and chart legends."""
    return chr(ord("A") + index) if index < 26 else f"R{index + 1}"
