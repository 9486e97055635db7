"""The tuning stage: search the `tuning.space` on the validation split, keep the best trial's model
(or refit its setting on train + validation), and leave the trials in the run's `tuning/` folder.

Optuna runs the search on this machine (`local.py`), Ray Tune on a cluster (`on_ray.py`); both
sample through Optuna and train through `trial.run_trial`. The test split is never touched here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlpipe.rundir import STUDY_FINGERPRINT
from dlpipe.spec.tuning import tuning_of
from dlpipe.tune.output import TrialRow, best_row
from dlpipe.tune.space import check_columns, touches_features, trial_spec
from dlpipe.tune.trial import Search, load_weights

if TYPE_CHECKING:
    from dlpipe.budget import Budget
    from dlpipe.checkpoint import TrainState
    from dlpipe.collect import Collected
    from dlpipe.model import Head, Net
    from dlpipe.pipeline import Reporter
    from dlpipe.prepare import Prepared
    from dlpipe.spec import PipelineSpec

__all__ = ["FINGERPRINT", "Tuned", "tune"]

FINGERPRINT = Path(STUDY_FINGERPRINT).name  # tuning/fingerprint: the config and data a search belongs to (--resume)


@dataclass
class Tuned:
    """The search's outcome: the model to test, and what it was chosen from."""

    spec: PipelineSpec  # the best trial's pipeline, without the tuning section
    prepared: Prepared
    net: Net
    head: Head
    state: TrainState  # the best trial's training (its history has the validation curve)
    summary: dict[str, Any]
    refit_epochs: int | None = None  # epochs of the refit on train + validation, when there was one
    validation: dict[str, Any] | None = None  # the best trial's validation results, when a refit replaced it


def tune(
    prepared: Prepared,
    collected: tuple[Collected, Collected | None, Collected | None],
    folder: Path,
    *,
    fingerprint: str,
    reporter: Reporter,
    budget: Budget | None = None,
) -> Tuned:
    """Run (or resume) the search in `folder/tuning`, then build the run's model from the best trial.

    With a `budget` (seconds), trials start and train only until the time left after what follows
    the search (evaluation, packaging) is spent."""
    from dlpipe import metrics
    from dlpipe.errors import TuningError
    from dlpipe.model import Head, Net
    from dlpipe.tune import output

    spec = prepared.spec
    cfg = tuning_of(spec)
    deadline = budget.deadline() if budget is not None and budget.seconds else None
    search = Search(spec, prepared, collected if touches_features(cfg.space) else None, deadline)
    metric = metrics.get(spec.problem.metric)
    check_columns(spec)
    tuning = folder / "tuning"
    tuning.mkdir(exist_ok=True)
    if not (tuning / FINGERPRINT).exists():
        from dlpipe.rundir import write_text

        write_text(tuning / FINGERPRINT, fingerprint)
    total = cfg.total_trials

    def watch(rows: list[TrialRow]) -> None:
        reporter.trials(rows, total, metric.name)
        output.write_csv(tuning, rows, cfg)  # kept current while the search runs: `tail -f` works

    if cfg.backend == "ray":
        from dlpipe.tune.on_ray import search_ray

        rows, weights = search_ray(search, tuning, watch=watch)
    else:
        from dlpipe.tune.local import WEIGHTS, search_local

        rows = search_local(search, tuning, watch=watch)
        weights = {r.number: tuning / WEIGHTS / f"{r.number}.safetensors" for r in rows}
    best = best_row(rows, metric)
    summary = output.write(tuning, rows, cfg, metric, best)
    if best is None:
        failed = next((r.error for r in rows if r.error), None)
        raise TuningError(
            f"no trial completed ({len(rows)} ran{'; first error: ' + failed if failed else ''})",
            where=str(tuning / "trials.csv"),
            fix="widen the space or the time budget, or loosen the pruner",
        )
    best_spec = trial_spec(spec, best.params)
    best_prepared = search.prepared_for(best_spec)
    path = weights.get(best.number)
    if path is not None and path.exists():
        net = Net(best_prepared.preprocessor, best_spec.model)
        head = Head.for_preprocessor(best_prepared.preprocessor)
        state = load_weights(path, net)
    else:  # weights lost (a kill between trial and save): training is seeded, so it comes out the same
        from dlpipe.tune.trial import run_trial

        result = run_trial(search, best.params, lambda epoch, value: None)
        net, head, state = result.net, result.head, result.state
    tuned = Tuned(best_spec, best_prepared, net, head, state, summary)
    if cfg.refit:
        _refit(tuned, reporter, deadline)
    return tuned


def _refit(tuned: Tuned, reporter: Reporter, deadline: float | None) -> None:
    """Retrain the best setting on train + validation for the epochs the best trial found best."""
    from dlpipe.evaluate import evaluate_split
    from dlpipe.train import fit_network

    tuned.validation = evaluate_split(tuned.net, tuned.head, tuned.prepared, "validation")
    epochs = tuned.state.best_epoch + 1
    reporter.info(f"refit: the best setting on train + validation, {epochs} epochs")
    from dlpipe.budget import EpochClock

    clock = None if deadline is None else EpochClock(lambda _: deadline)
    tuned.net, tuned.head, _ = fit_network(tuned.prepared, tuned.spec, refit_epochs=epochs, clock=clock)
    tuned.refit_epochs = epochs
