"""What a search leaves in `tuning/`: `trials.csv` (one row per trial) and `summary.json` (the best
trial, the best value after each trial, parameter importances): the data behind the report's plots."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from dlpipe.metrics import Metric
    from dlpipe.spec import Tuning

COMPLETE, PRUNED, FAIL, RUNNING, WAITING = "complete", "pruned", "fail", "running", "waiting"
REPEAT = "repeat"  # the sampler proposed a setting a finished trial ran: its result, not trained again


@dataclass
class TrialRow:
    """One trial, the same whichever backend ran it."""

    number: int
    state: str
    params: dict[str, Any]
    value: float | None = None  # best validation value (complete), last one reached (pruned)
    epochs: int = 0
    seconds: float | None = None
    best_epoch: int | None = None
    validation_loss: float | None = None
    error: str | None = None
    repeat_of: int | None = None  # a repeat's earlier trial with the same parameters
    curve: list[float] = field(default_factory=list)  # validation value after each epoch


def rows_from_study(study: optuna.Study, cfg: Tuning) -> list[TrialRow]:
    """Every trial of an Optuna study as a row, with the settings' values as parameters."""
    from dlpipe.tune.space import values_of

    rows = []
    for t in study.get_trials(deepcopy=False):
        curve = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        value = t.value if t.value is not None else (curve[-1] if curve and t.state.name == "PRUNED" else None)
        end = t.datetime_complete
        seconds = (end - t.datetime_start).total_seconds() if end and t.datetime_start else None
        repeat_of = t.user_attrs.get("repeat_of")
        rows.append(
            TrialRow(
                number=t.number,
                state=REPEAT if repeat_of is not None else t.state.name.lower(),
                params=values_of(t.params, cfg),
                value=value,
                epochs=int(t.user_attrs.get("epochs", len(curve))),
                seconds=round(seconds, 3) if seconds is not None else None,
                best_epoch=t.user_attrs.get("best_epoch"),
                validation_loss=t.user_attrs.get("validation_loss"),
                error=t.user_attrs.get("error"),
                repeat_of=repeat_of,
                curve=curve,
            )
        )
    return rows


def best_row(rows: list[TrialRow], metric: Metric) -> TrialRow | None:
    """The complete trial with the best value; ties (accuracy on a small validation set) go to the
    lower validation loss, then to the earlier trial."""
    done = [r for r in rows if r.state == COMPLETE and r.value is not None and math.isfinite(r.value)]
    if not done:
        return None
    sign = -1.0 if metric.greater_is_better else 1.0
    return min(done, key=lambda r: (sign * r.value, r.validation_loss or math.inf, r.number))


def trials_csv(rows: list[TrialRow], space: list[str]) -> str:
    """One row per trial: number, state, value, epochs, seconds, best epoch, each parameter, the
    trial a repeat repeats, and the error of a failed trial."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", "state", "value", "epochs", "seconds", "best_epoch", *space, "repeat_of", "error"])
    for r in sorted(rows, key=lambda r: r.number):
        writer.writerow(
            [
                r.number,
                r.state,
                "" if r.value is None else r.value,
                r.epochs,
                "" if r.seconds is None else r.seconds,
                "" if r.best_epoch is None else r.best_epoch,
                *(r.params.get(p, "") for p in space),
                "" if r.repeat_of is None else r.repeat_of,
                r.error or "",
            ]
        )
    return buffer.getvalue()


def summary(rows: list[TrialRow], cfg: Tuning, metric: Metric, best: TrialRow | None) -> dict[str, Any]:
    """The search in figures: counts, epochs spent, the best trial, best value after each finished
    trial, and how much each parameter explains the value (Optuna's fANOVA)."""
    ordered = sorted(rows, key=lambda r: r.number)
    history, best_so_far = [], None
    for r in ordered:
        if r.state != COMPLETE or r.value is None or not math.isfinite(r.value):
            continue
        if best_so_far is None or metric.better(r.value, best_so_far):
            best_so_far = r.value
        history.append({"trial": r.number, "value": r.value, "best": best_so_far})
    counts = {s: sum(r.state == s for r in rows) for s in (COMPLETE, PRUNED, FAIL, REPEAT)}
    return {
        "metric": metric.name,
        "direction": "maximize" if metric.greater_is_better else "minimize",
        "method": cfg.method,
        "pruner": cfg.pruner,
        "backend": cfg.backend,
        "trials": counts | {"total": len(rows)},
        "epochs": sum(r.epochs for r in rows),
        "best": None
        if best is None
        else {"trial": best.number, "value": best.value, "params": best.params, "epochs": best.epochs},
        "history": history,
        "importances": importances(rows, cfg),
    }


def importances(rows: list[TrialRow], cfg: Tuning) -> dict[str, float]:
    """Each parameter's share of the variance in value over complete trials; empty when too few."""
    import optuna

    from dlpipe.tune.space import distributions, quiet_optuna

    quiet_optuna()
    dists = distributions(cfg.space)
    done = [r for r in rows if r.state == COMPLETE and r.value is not None and math.isfinite(r.value)]
    varied = [p for p in dists if len({repr(r.params.get(p)) for r in done}) > 1]
    if len(done) < 3 or not varied:
        return {}
    study = optuna.create_study()  # in memory: the rows of either backend, in Optuna's terms
    for r in done:
        if all(p in r.params for p in dists):
            study.add_trial(optuna.trial.create_trial(params=r.params, distributions=dists, value=r.value))
    try:
        found = optuna.importance.get_param_importances(study, params=varied, evaluator=_evaluator())
    except (RuntimeError, ValueError):  # e.g. every value equal: nothing to explain
        return {}
    return {k: round(float(v), 4) for k, v in found.items()}


def _evaluator() -> optuna.importance.FanovaImportanceEvaluator:
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def write_csv(folder: Path, rows: list[TrialRow], cfg: Tuning) -> None:
    """trials.csv, replaced atomically."""
    from dlpipe.rundir import write_text

    write_text(folder / "trials.csv", trials_csv(rows, list(cfg.space)))


def write(folder: Path, rows: list[TrialRow], cfg: Tuning, metric: Metric, best: TrialRow | None) -> dict[str, Any]:
    """trials.csv and summary.json in `folder`, each replaced atomically; returns the summary."""
    from dlpipe.rundir import write_json

    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder, rows, cfg)
    result = summary(rows, cfg, metric, best)
    write_json(folder / "summary.json", result)
    return result
