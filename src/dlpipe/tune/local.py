"""Optuna on this machine. The study lives in the run folder (`tuning/study.db`, SQLite), so a
killed search resumes where it stopped; `parallel: N` runs N worker processes on that one study.

Workers claim trials under a file lock (ask, then tell), so a search runs exactly `trials` trials
whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlpipe.tune.output import TrialRow, rows_from_study
from dlpipe.tune.space import finite_size, make_pruner, make_sampler, quiet_optuna, raw_of, suggest, values_of
from dlpipe.tune.trial import Search, run_trial, save_weights

if TYPE_CHECKING:
    import optuna

    from dlpipe.spec import Tuning

STUDY = "dlpipe"
WEIGHTS = "trials"  # tuning/trials/<number>.safetensors: the kept weights of the best trials so far
POLL_SECONDS = 1.0
REPEAT = "repeat_of"  # user attribute of a trial whose parameters a finished trial already ran
MAX_REPEATS = 3  # repeats in a row before a setting no trial has run is queued


def study_path(tuning: Path) -> Path:
    return tuning / "study.db"


def _storage(tuning: Path) -> optuna.storages.RDBStorage:
    import optuna

    # a generous lock timeout: workers write the same SQLite file
    return optuna.storages.RDBStorage(
        f"sqlite:///{study_path(tuning)}", engine_kwargs={"connect_args": {"timeout": 60}}
    )


def _open(tuning: Path, cfg: Tuning, training: Any, seed: int) -> optuna.Study:
    import optuna

    pruner = make_pruner(cfg, training.epochs, training.early_stopping)
    return optuna.load_study(study_name=STUDY, storage=_storage(tuning), sampler=make_sampler(cfg, seed), pruner=pruner)


def _prepare_study(tuning: Path, direction: str) -> int:
    """Create the study, or reopen it: trials a kill interrupted are marked failed and queued to run
    again with the same parameters. Returns how many trials the study held already."""
    import optuna
    from optuna.trial import TrialState

    quiet_optuna()
    tuning.mkdir(parents=True, exist_ok=True)
    storage = _storage(tuning)
    study = optuna.create_study(study_name=STUDY, storage=storage, direction=direction, load_if_exists=True)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "error", "interrupted; its parameters were queued to run again")
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    existing = len(study.trials)
    storage.engine.dispose()  # no open connection may cross a fork
    return existing


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _work(
    search: Search,
    tuning: Path,
    seed: int,
    deadline: float,
    stop: Any,
    threads: int | None,
) -> None:
    """Claim and run trials until the study holds `trials` of them, the time is up, or a trial fails."""
    import optuna
    from optuna.trial import TrialState

    from dlpipe import metrics

    quiet_optuna()
    cfg = search.tuning
    metric = metrics.get(search.base.problem.metric)
    study = _open(tuning, cfg, search.base.training, seed)
    points = finite_size(cfg.space)
    repeats = 0
    while not stop.is_set():
        with _locked(tuning / "lock"):
            counted = [t for t in study.get_trials(deepcopy=False) if _counts(t)]
            tried = {_key(values_of(t.params, cfg)) for t in counted}
            # the first trial runs however little time is left: a search must end with a model
            late = time.time() > deadline and bool(counted)
            if len(counted) >= cfg.total_trials or late or len(tried) == points:
                return
            if repeats >= MAX_REPEATS:  # the sampler keeps proposing what is known: try something new
                if points is None:
                    return
                study.enqueue_trial(raw_of(_unvisited(cfg.space, tried, seed + len(counted)), cfg))
            trial = study.ask()
        params = suggest(trial, cfg)
        earlier = _finished_with(study, params, cfg)
        if earlier is not None:
            # training is seeded: the same setting would train to the same result, so reuse it
            repeats += 1
            trial.set_user_attr(REPEAT, earlier.number)
            if earlier.state == TrialState.COMPLETE:
                study.tell(trial, earlier.value)
            else:
                study.tell(trial, state=TrialState.PRUNED)
            continue
        repeats = 0

        def report(epoch: int, value: float, trial: optuna.Trial = trial) -> None:
            if math.isfinite(value):
                trial.report(value, epoch)
            if trial.should_prune():
                trial.set_user_attr("epochs", epoch)
                raise optuna.TrialPruned

        try:
            result = run_trial(search, params, report, threads)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        except KeyboardInterrupt:  # left running: a resume queues its parameters again, as after a kill
            raise
        except BaseException as exc:
            from dlpipe.errors import DlpipeError

            kind = "input" if isinstance(exc, DlpipeError) else type(exc).__name__
            trial.set_user_attr("error", f"{kind}: {exc}")
            study.tell(trial, state=TrialState.FAIL)
            stop.set()
            raise
        state = result.state
        for key, value in (
            ("epochs", state.epoch),
            ("best_epoch", state.best_epoch + 1),
            ("validation_loss", state.best_loss if math.isfinite(state.best_loss) else None),
        ):
            trial.set_user_attr(key, value)
        if math.isfinite(state.best_score):
            save_weights(tuning / WEIGHTS / f"{trial.number}.safetensors", result.net, state, params)
            study.tell(trial, state.best_score)
        else:  # the metric was undefined on every epoch (ROC AUC on a one-class validation set)
            trial.set_user_attr("error", f"{metric.name} was undefined on the validation split")
            study.tell(trial, state=TrialState.FAIL)
        _drop_beaten(study, tuning, metric)


def _counts(trial: Any) -> bool:
    """Whether a trial spends the budget: running or finished, not failed, and not a repeat."""
    from optuna.trial import TrialState

    finished = trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return finished and REPEAT not in trial.user_attrs


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _finished_with(study: optuna.Study, params: dict[str, Any], cfg: Tuning) -> Any:
    """The finished trial (complete or pruned, not itself a repeat) that ran exactly these parameters."""
    from optuna.trial import TrialState

    key = _key(params)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if REPEAT not in t.user_attrs and _key(values_of(t.params, cfg)) == key:
            return t
    return None


def _unvisited(space: dict[str, Any], tried: set[tuple], seed: int) -> dict[str, Any]:
    """A random setting of a finite space that no trial has run."""
    import itertools
    import random

    settings = [
        dict(zip(space, values, strict=True)) for values in itertools.product(*(d.choices for d in space.values()))
    ]
    fresh = [p for p in settings if _key(p) not in tried]
    return random.Random(seed).choice(fresh)


def _drop_beaten(study: optuna.Study, tuning: Path, metric: Any) -> None:
    """Delete the weights of complete trials that a better one beats (they can never be chosen)."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return
    best = min(t.value for t in done) if not metric.greater_is_better else max(t.value for t in done)
    for t in done:
        if metric.better(best, t.value):
            (tuning / WEIGHTS / f"{t.number}.safetensors").unlink(missing_ok=True)


def search_local(
    search: Search,
    tuning: Path,
    *,
    watch: Callable[[list[TrialRow]], None] | None = None,
) -> list[TrialRow]:
    """Run (or resume) the search; returns every trial of the study."""
    from dlpipe import metrics

    cfg = search.tuning
    direction = "maximize" if metrics.get(search.base.problem.metric).greater_is_better else "minimize"
    existing = _prepare_study(tuning, direction)
    left = search.time_left(cfg.timeout)
    deadline = time.time() + (math.inf if left is None else left)
    seed = cfg.seed + 1000 * existing  # a resumed search draws anew rather than repeating its first draws
    context = multiprocessing.get_context("fork")  # workers share the prepared data without copying it
    stop = context.Event()
    poller = _Poller(tuning, cfg, watch) if watch else None
    if cfg.parallel == 1:
        if poller:
            poller.start()
        try:
            _work(search, tuning, seed, deadline, stop, None)
        finally:
            if poller:
                poller.stop()
    else:
        # one thread each: a forked child whose parent ran OpenMP on several threads hangs in its first
        # multi-threaded operation (GNU OpenMP is not fork-safe); parallel trials use the cores instead
        workers = [
            context.Process(target=_child, args=(search, tuning, seed + i, deadline, stop, 1), daemon=True)
            for i in range(cfg.parallel)
        ]
        for w in workers:
            w.start()
        if poller:
            poller.start()
        try:
            for w in workers:
                w.join()
        finally:
            for w in workers:
                if w.is_alive():
                    w.terminate()
            if poller:
                poller.stop()
        if any(w.exitcode for w in workers):
            _raise_failure(tuning, cfg)
    return _rows(tuning, cfg)


def _raise_failure(tuning: Path, cfg: Tuning) -> None:
    """A worker process stopped on a failed trial: say which, and why, in the parent."""
    from dlpipe.errors import TuningError

    rows = _rows(tuning, cfg)
    failed = [r for r in rows if r.state == "fail" and r.error and not r.error.startswith("interrupted")]
    last = max(failed, key=lambda r: r.number, default=None)
    why = f"trial {last.number} failed: {last.error}" if last else "a worker process stopped unexpectedly"
    raise TuningError(why, where=str(study_path(tuning)), fix="fix the cause, then `dlpipe run --resume`")


def _child(*args: Any) -> None:
    """A worker process: its own SQLite connection and thread budget; a failure ends the search."""
    import torch

    torch.set_num_threads(args[-1])
    try:
        _work(*args)
    except BaseException:
        os._exit(1)  # the trial's error is in the study; the parent reports it


def _rows(tuning: Path, cfg: Tuning) -> list[TrialRow]:
    import optuna

    storage = _storage(tuning)
    try:
        return rows_from_study(optuna.load_study(study_name=STUDY, storage=storage), cfg)
    finally:
        storage.engine.dispose()


class _Poller:
    """Reads the study every second and hands its rows to `watch` (the live table of trials)."""

    def __init__(self, tuning: Path, cfg: Tuning, watch: Callable[[list[TrialRow]], None]) -> None:
        self.tuning, self.cfg, self.watch = tuning, cfg, watch
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        self.watch(_rows(self.tuning, self.cfg))

    def _loop(self) -> None:
        while not self.done.wait(POLL_SECONDS):
            with contextlib.suppress(Exception):  # a busy database now and then: show the next poll
                self.watch(_rows(self.tuning, self.cfg))
