"""The same search on Ray Tune: Optuna's sampler through Ray's `OptunaSearch`, Ray's schedulers
(ASHA, median stopping, HyperBand) for pruning, one trial per CPU anywhere in the cluster.

`address: auto` joins a running cluster and `ray://host:port` connects through Ray Client; with
neither a local Ray starts (and stops afterwards). Trials keep their weights as Ray checkpoints
under `storage` (the run's `tuning/` folder by default; on a multi-node cluster a path or URI
every node can reach). dlpipe must be installed on every node.

Ray pickles its experiment state; dlpipe never loads it, so `--resume` starts a new Ray
experiment (the local Optuna backend resumes trial by trial).
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlpipe.tune.output import COMPLETE, FAIL, PRUNED, RUNNING, TrialRow, best_row
from dlpipe.tune.space import make_sampler, suggest, values_of, warmup_epochs
from dlpipe.tune.trial import Search, run_trial, save_weights

if TYPE_CHECKING:
    from dlpipe.spec import Tuning

EXPERIMENT = "ray"
SCORE = "score"  # best validation value so far, reported after every epoch
WEIGHTS_FILE = "weights.safetensors"


def search_ray(
    search: Search, tuning: Path, *, watch: Callable[[list[TrialRow]], None] | None = None
) -> tuple[list[TrialRow], dict[int, Path]]:
    """Run (or resume) the search on Ray; returns every trial and the best trial's weights file."""
    from dlpipe.cluster import connected, require_ray

    require_ray("tuning")
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from dlpipe import metrics

    cfg = search.tuning
    metric = metrics.get(search.base.problem.metric)
    mode = "max" if metric.greater_is_better else "min"
    logging.getLogger("ray.tune").setLevel(logging.WARNING)  # its per-save lines would drown the table
    with connected(cfg.address, "tuning"):
        storage = cfg.storage or str(tuning.resolve())
        trainable = tune.with_resources(tune.with_parameters(_trainable, search=search), {"cpu": 1})
        # Ray keeps its experiment state as pickles, which dlpipe never loads: a resumed search on
        # Ray starts a new experiment beside the old one (Optuna's local study resumes trial by trial)
        name = f"{EXPERIMENT}-{time.strftime('%Y%m%d-%H%M%S')}"
        searcher = OptunaSearch(
            space=functools.partial(_suggest_only, cfg=cfg),
            metric=SCORE,
            mode=mode,
            sampler=make_sampler(cfg, cfg.seed),
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=SCORE,
                mode=mode,
                search_alg=searcher,
                scheduler=_scheduler(cfg, search.base.training.epochs, search.base.training.early_stopping),
                num_samples=cfg.total_trials,
                max_concurrent_trials=cfg.parallel,
                time_budget_s=search.time_left(cfg.timeout),
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage,
                verbose=0,
                callbacks=[_watch(watch, cfg)] if watch else None,
            ),
        )
        results = tuner.fit()
        ordered = _ordered(results)
        rows = [_row(n, r.metrics or {}, r.config or {}, r.error, cfg) for n, r in enumerate(ordered)]
        if watch:
            watch(rows)
        weights: dict[int, Path] = {}
        best = best_row(rows, metric)
        if best is not None:
            checkpoint = ordered[best.number].checkpoint
            if checkpoint is not None:
                target = tuning / "trials" / f"{best.number}.safetensors"
                target.parent.mkdir(parents=True, exist_ok=True)
                with checkpoint.as_directory() as folder:
                    shutil.copyfile(Path(folder) / WEIGHTS_FILE, target)
                weights[best.number] = target
        return rows, weights


def _suggest_only(trial: Any, cfg: Tuning) -> None:
    suggest(trial, cfg)  # define-by-run: OptunaSearch reads the parameters off the trial


def _scheduler(cfg: Tuning, epochs: int, patience: int) -> Any:
    """Ray's counterpart of each pruner, on epochs (`training_iteration`).

    A trial reports once per epoch and once more at the end with its weights, so the longest trial
    runs `epochs + 1` iterations.
    """
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

    grace = max(1, epochs // 20)
    if cfg.pruner == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=epochs + 1, grace_period=grace, reduction_factor=3)
    if cfg.pruner == "hyperband":
        return HyperBandScheduler(time_attr="training_iteration", max_t=epochs + 1, reduction_factor=3)
    if cfg.pruner == "median":
        return MedianStoppingRule(
            time_attr="training_iteration", grace_period=warmup_epochs(epochs, patience), min_samples_required=5
        )
    return FIFOScheduler()


def _trainable(config: dict[str, Any], search: Search) -> None:
    """One Ray trial: train, report the best validation value after every epoch, and at the end the
    kept weights as a checkpoint."""
    import tempfile

    import torch
    from ray import tune

    from dlpipe import metrics

    torch.set_num_threads(1)  # one CPU per trial, as requested of Ray
    cfg = search.tuning
    metric = metrics.get(search.base.problem.metric)
    params = values_of({path: config[path] for path in cfg.space}, cfg)
    best = {"value": float("nan")}

    def report(epoch: int, value: float) -> None:
        if metric.better(value, best["value"]):
            best["value"] = value
        tune.report({SCORE: best["value"], "epoch": epoch, "finished": 0})

    result = run_trial(search, params, report, threads=1)
    state = result.state
    with tempfile.TemporaryDirectory() as folder:
        save_weights(Path(folder) / WEIGHTS_FILE, result.net, state, params)
        tune.report(
            {
                SCORE: state.best_score,
                "epoch": state.epoch,
                "best_epoch": state.best_epoch + 1,
                "validation_loss": state.best_loss,
                "finished": 1,
            },
            checkpoint=tune.Checkpoint.from_directory(folder),
        )


def _ordered(results: Any) -> list[Any]:
    """Results in the order the trials were created (Ray's trial ids end in a counter)."""
    return sorted(results, key=lambda r: r.path)


def _row(number: int, last: dict[str, Any], config: dict[str, Any], error: Any, cfg: Tuning) -> TrialRow:
    if error is not None:
        state = FAIL
    elif last.get("finished"):
        state = COMPLETE
    elif last:
        state = PRUNED  # a scheduler stopped it before its last epoch
    else:
        state = RUNNING
    value = last.get(SCORE)
    return TrialRow(
        number=number,
        state=state,
        params=values_of({p: config[p] for p in cfg.space if p in config}, cfg),
        value=None if value is None or value != value else float(value),
        epochs=int(last.get("epoch", 0)),
        seconds=round(float(last["time_total_s"]), 3) if "time_total_s" in last else None,
        best_epoch=last.get("best_epoch"),
        validation_loss=last.get("validation_loss"),
        error=None if error is None else f"{type(error).__name__}: {error}"[:500],
    )


def _watch(watch: Callable[[list[TrialRow]], None], cfg: Tuning) -> Any:
    """A Ray callback handing the trials to `watch` (the live table) at most once a second."""
    from ray.tune import Callback

    class Watch(Callback):
        def __init__(self) -> None:
            self.last = 0.0

        def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
            if time.monotonic() - self.last < 1.0:
                return
            self.last = time.monotonic()
            rows = []
            for n, trial in enumerate(sorted(trials, key=lambda t: t.trial_id)):
                row = _row(n, trial.last_result or {}, trial.config, None, cfg)
                if trial.status == "ERROR":
                    row.state = FAIL
                elif trial.status in ("RUNNING", "PENDING") and row.state != COMPLETE:
                    row.state = RUNNING
                rows.append(row)
            watch(rows)

    return Watch()
