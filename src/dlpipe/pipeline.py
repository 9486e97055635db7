"""The whole pipeline as plain stage calls: collect, prepare, train, evaluate, test, package.

`Pipeline.from_yaml(path).run()` is the Python API; `dlpipe run` is a thin layer over it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from dlpipe.collect import Collected, collect
from dlpipe.metrics import check_goal
from dlpipe.prepare import UNSEEN_CLASS
from dlpipe.report.examples import EXAMPLES
from dlpipe.rundir import run_folder, write_json, write_text
from dlpipe.spec import PipelineSpec, load_spec, validate_spec

if TYPE_CHECKING:
    from dlpipe.prepare import Prepared
    from dlpipe.tracking import Tracking
    from dlpipe.tune.output import TrialRow


EXAMPLE_ROWS = 8  # training rows the ONNX export is traced and checked on


class Reporter(Protocol):
    """What the pipeline tells whoever watches it (the CLI draws progress bars from this)."""

    def stage(self, name: str) -> None: ...
    def info(self, text: str) -> None: ...
    def epoch(self, record: dict[str, Any], epochs: int) -> None: ...
    def trials(self, rows: list[TrialRow], total: int, metric: str) -> None: ...


class Silent:
    def stage(self, name: str) -> None:
        pass

    def info(self, text: str) -> None:
        pass

    def epoch(self, record: dict[str, Any], epochs: int) -> None:
        pass

    def trials(self, rows: list[TrialRow], total: int, metric: str) -> None:
        pass


@dataclass
class RunResult:
    folder: Path
    metrics: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    data_fingerprint: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.metrics["goal"]["passed"])

    @property
    def model_folder(self) -> Path:
        return self.folder / "model"


class Pipeline:
    """A validated pipeline file, and optionally in-memory data standing in for `data.source`."""

    def __init__(self, spec: PipelineSpec, data: Any = None) -> None:
        self.spec = spec
        self.data = data

    @classmethod
    def from_yaml(cls, path: str | Path, data: Any = None) -> Pipeline:
        return cls(load_spec(path), data)

    @classmethod
    def from_dict(cls, config: dict[str, Any], data: Any = None) -> Pipeline:
        if data is not None:
            config = {**config, "data": {"source": "<in-memory table>", **config.get("data", {})}}
        return cls(validate_spec(config), data)

    def collect(self) -> tuple[Collected, Collected | None, Collected | None]:
        data = self.spec.data
        from dlpipe.collect.folders import MEDIA_TYPES

        media = {name for name, f in self.spec.features.items() if not isinstance(f, str) and f.type in MEDIA_TYPES}
        source = collect(self.data if self.data is not None else data.source, media)
        return (source, *(collect(s, media) if s is not None else None for s in (data.validation, data.test)))

    def prepare(self) -> Prepared:
        """Collect and prepare without training (what `dlpipe validate` checks).

        Streamed data makes both passes; its tensor cache is removed again (the splits keep their sizes).
        """
        from dlpipe.prepare import prepare

        if self.streamed():
            import tempfile

            with tempfile.TemporaryDirectory(prefix="dlpipe-validate-") as root:
                return self.prepare_streamed(Path(root))
        return prepare(self.spec, *self.collect())

    def streamed(self) -> bool:
        """Whether this run reads its source in batches (`data.streaming`, auto: by the source's size)."""
        from dlpipe.collect.stream import should_stream

        return self.data is None and should_stream(self.spec.data, self.spec.data.source)

    def prepare_streamed(self, root: Path) -> Prepared:
        """One pass of statistics and one into a tensor cache, in a new folder under `root`."""
        from dlpipe.prepare.streamed import prepare_source

        return prepare_source(self.spec, root)

    def run(
        self,
        run_dir: str | Path = "runs",
        *,
        resume: bool = False,
        reporter: Reporter | None = None,
        warm_start: str | Path | None = None,
    ) -> RunResult:
        """Every stage; the run folder holds the resolved config, profile, history, metrics and model.

        `warm_start` (a model folder or reference) trains on from that model: its preprocessing state
        and architecture are kept, its weights are the starting point. With a `tracking:` section the
        run also logs itself to MLflow or TensorBoard.
        """
        from dlpipe.tracking import Tracking

        tracking = Tracking.open(self.spec)
        reporter = tracking.watch(reporter or Silent())
        try:
            result = self._run(Path(run_dir), resume, reporter, warm_start, tracking)
        except BaseException as exc:
            tracking.failed(exc)
            from dlpipe.errors import StorageError, disk_full

            if disk_full(exc):
                raise StorageError.full(
                    where=str(run_dir),
                    fix="free space, then `dlpipe run --resume` continues from the last checkpoint, if one was written",
                ) from None
            raise
        tracking.finished(result)
        return result

    def _run(
        self, run_dir: Path, resume: bool, reporter: Reporter, warm_start: str | Path | None, tracking: Tracking
    ) -> RunResult:
        from dlpipe.baseline import fit_baseline
        from dlpipe.budget import Budget

        budget = Budget(self.spec.budget)  # the clock starts here: the budget covers the whole run
        seconds: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[name] = round(now - clock, 3)
            clock = now

        init, collected, streamed = None, None, self.streamed()
        if streamed:  # collection and preparation are one streamed stage
            reporter.stage("prepare")
            if warm_start is not None:
                from dlpipe.errors import ConfigError

                raise ConfigError("a warm start reads its data into memory", where="data.streaming", fix="set it off")
            prepared = self.prepare_streamed(Path(run_dir) / self.spec.name)
        else:
            reporter.stage("collect")
            collected = self.collect()
            lap("collect")
            reporter.stage("prepare")
            from dlpipe.prepare import prepare

            if warm_start is None:
                prepared = prepare(self.spec, *collected)
            else:
                prepared, init = _warm_start(self.spec, collected, warm_start)
        lap("prepare")
        for line in summarise(prepared):
            reporter.info(line)
        resolved = prepared.spec
        fingerprint = _fingerprint(resolved, prepared)
        folder = run_folder(run_dir, resolved.name, resume, fingerprint)
        if prepared.cache is not None:
            import shutil

            shutil.rmtree(folder / "cache", ignore_errors=True)  # a resumed run's old cache
            prepared.cache.move(folder / "cache")
        write_text(folder / "pipeline.yaml", resolved.to_yaml())
        write_json(folder / "profile.json", prepared.profile)
        tracking.started(folder, resolved)

        from dlpipe.evaluate import evaluate_splits

        baseline = fit_baseline(prepared)  # before training: what training may spend is then known
        lap("baseline")
        tuned = None
        if resolved.tuning is not None:
            from dlpipe.train import write_history
            from dlpipe.tune import tune

            reporter.stage("tune")
            tuned = tune(prepared, collected, folder, fingerprint=fingerprint, reporter=reporter, budget=budget)
            net, head, state, model_spec = tuned.net, tuned.head, tuned.state, tuned.spec
            write_history(folder / "history.jsonl", state.history, resolved.problem.metric)
            if tuned.prepared is not prepared:  # the search changed preprocessing: the baseline follows
                baseline = fit_baseline(tuned.prepared)
            prepared = tuned.prepared
            lap("tune")
        else:
            from dlpipe.train import train_model

            reporter.stage("train")
            net, head, state = train_model(
                prepared, folder, resume=resume, fingerprint=fingerprint, reporter=reporter, init=init, budget=budget
            )
            model_spec = resolved
            lap("train")
        reporter.stage("evaluate")
        from dlpipe.decide import decide, describe

        decision = decide(net, head, prepared, model_spec, refit=tuned is not None and tuned.refit_epochs is not None)
        head = decision.head(head.kind)
        for line in describe(decision) + budget.describe(resolved.training.epochs, state.epoch):
            reporter.info(line)
        results = evaluate_splits(net, head, prepared, threshold=decision.threshold)
        examples = results["test"].pop("examples", None)  # none for a split streamed to disk
        if examples is not None:
            write_json(folder / EXAMPLES, examples)
        if tuned is not None and tuned.validation is not None:
            results["validation"] = tuned.validation  # the refit trained on validation: score the trial's model
        lap("evaluate_and_test")
        metrics = {
            "validation": results["validation"]["metrics"],
            "test": results["test"]["metrics"],
            "goal": check_goal(resolved.problem.goal, results["test"]["metrics"]),
            "metric": resolved.problem.metric,
            "baseline": baseline or {},
            "unscored_test_rows": sum(
                d["count"]
                for d in prepared.profile["dropped"]["rows"]
                if d["split"] == "test" and d["reason"] == UNSEEN_CLASS
            ),
            "best_epoch": state.best_epoch + 1,
            "epochs_run": state.epoch,
            "details": {name: results[name]["details"] for name in ("validation", "test")},
            "decision": decision.to_dict(),
        }
        if tuned is not None:
            metrics["tuning"] = _tuning_metrics(tuned)
            if tuned.refit_epochs is not None:
                metrics["epochs_run"] = metrics["best_epoch"] = tuned.refit_epochs
        reporter.stage("package")
        from dlpipe.package import save_model

        save_model(
            folder / "model",
            net=net,
            preprocessor=prepared.preprocessor,
            head_kind=head.kind,
            decision=decision.to_dict(),
            pipeline=model_spec.saved(),
            metrics={k: metrics[k] for k in ("validation", "test", "goal")},
            reference=_reference(results["train_sample"]),
            example=prepared.splits["train"].read(0, EXAMPLE_ROWS),
            embeddings=results["train_sample"].get("embeddings"),
        )
        from dlpipe.package import model_summary

        metrics["model"] = model_summary(
            net, head.kind, prepared.preprocessor, prepared.splits["train"].frame[:EXAMPLE_ROWS]
        )
        onnx = json.loads((folder / "model" / "model.json").read_text()).get("onnx", {})
        if "error" in onnx:
            reporter.info(f"no model.onnx ({onnx['error']}); serving will run the model in PyTorch")
        lap("package")
        metrics["seconds"] = seconds
        metrics["budget"] = budget.to_dict(resolved.training.epochs) if budget.seconds else None
        from dlpipe.report import write_report

        write_json(folder / "metrics.json", metrics)  # its presence marks a finished run
        try:
            write_report(folder)
        except Exception as exc:  # the model and its metrics stand; a page that failed to draw must not undo them
            reporter.info(f"warning: report.html not written ({type(exc).__name__}: {exc})")
        (folder / "checkpoint.safetensors").unlink(missing_ok=True)
        result = RunResult(folder, metrics, seconds, data_fingerprint(prepared))
        if prepared.cache is not None:
            prepared.cache.remove()  # derived from the source and as large as it: gone with the run's end
        return result


def _tuning_metrics(tuned: Any) -> dict[str, Any]:
    """The search in brief for metrics.json (tuning/summary.json has it all)."""
    summary = tuned.summary
    return {
        "method": summary["method"],
        "trials": summary["trials"],
        "epochs": summary["epochs"],
        "best_trial": summary["best"]["trial"],
        "best_value": summary["best"]["value"],
        "best_params": summary["best"]["params"],
        "refit": tuned.refit_epochs is not None,
    }


def summarise(prepared: Prepared) -> list[str]:
    """What preparation decided, in a few lines for the terminal (profile.json has it all)."""
    profile, pre = prepared.profile, prepared.preprocessor
    splits = profile["splits"]
    kinds: dict[str, int] = {}
    for column in pre.columns:
        kinds[column.type] = kinds.get(column.type, 0) + 1
    lines = [
        f"{profile['rows']} rows, {profile['task']}, target {pre.target!r}, metric {prepared.spec.problem.metric}",
        f"split ({splits['method']}): " + ", ".join(f"{k} {splits[k]}" for k in ("train", "validation", "test")),
        "features: " + ", ".join(f"{n} {k}" for k, n in kinds.items()),
    ]
    tuning = prepared.spec.tuning
    if tuning is not None:
        lines.append(
            f"tuning: {tuning.method}, {tuning.total_trials} trials over {len(tuning.space)} settings, "
            f"pruner {tuning.pruner}, {tuning.parallel} at a time" + (" on Ray" if tuning.backend == "ray" else "")
        )
    lines += [f"ignored {d['name']!r}: {d['reason']}" for d in profile["dropped"]["columns"]]
    lines += [f"dropped {d['count']} rows ({d['split']}): {d['reason']}" for d in profile["dropped"]["rows"]]
    files = profile["dropped"].get("files", [])
    if files:
        first = files[0]
        what = first.get("value") or first.get("file")
        lines.append(f"skipped {len(files)} unusable files, listed in profile.json (first: {what}: {first['reason']})")
    return lines + [f"note: {n}" for n in profile["notes"]]


def _fingerprint(spec: PipelineSpec, prepared: Prepared) -> str:
    """Identifies config and data, so --resume refuses a checkpoint of anything else."""
    digest = hashlib.sha256(spec.to_yaml().encode())
    digest.update(data_fingerprint(prepared).encode())
    return digest.hexdigest()[:16]


def _warm_start(spec: PipelineSpec, collected: Any, model: str | Path) -> tuple[Prepared, dict[str, Any]]:
    """Data prepared with a model's own preprocessing state, its architecture, and its weights."""
    from dlpipe.errors import ConfigError
    from dlpipe.package import load_model
    from dlpipe.prepare import prepare
    from dlpipe.spec import ModelSpec

    if spec.tuning is not None:
        raise ConfigError("a warm start trains one network; it does not combine with tuning", where="tuning")
    start = load_model(model)
    architecture = ModelSpec(**start.manifest["pipeline"].get("model", {}))
    prepared = prepare(spec.model_copy(update={"model": architecture}), *collected, preprocessor=start.preprocessor)
    return prepared, start.net.state_dict()


def data_fingerprint(prepared: Prepared) -> str:
    """Identifies the prepared data of every split (the registry's lineage records it)."""
    digest = hashlib.sha256()
    for name in sorted(prepared.splits):
        prepared.splits[name].digest_into(digest)
    return digest.hexdigest()[:16]


def _reference(sample: dict[str, Any]) -> pd.DataFrame:
    """Training inputs with the model's predictions: the monitor's baseline."""
    frame = sample["frame"].copy()
    frame["prediction"] = sample["prediction"]
    for key, values in sample.get("probabilities", {}).items():
        frame[f"proba_{key}"] = values
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype("string")
    return frame
