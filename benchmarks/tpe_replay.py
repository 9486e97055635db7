r"""TPE replayed against a recorded grid: how many trained trials the search needs to reach the grid's best.

Training is seeded, so a setting always scores the same (benchmarks/tuning.py checks it). A grid
scored once for real is therefore an exact stand-in for training: this script runs dlpipe's own
search loop (`dlpipe.tune.local.search_local`: the sampler of `make_sampler`, `suggest`, the reuse
of repeats and the queueing of an unvisited setting after repeats in a row) with training replaced
by a look-up in the recorded grid, for many sampler seeds. Four seeds of the real benchmark cannot
tell a median of 12 from one of 20; fifty can (a hundred moved the medians in
benchmarks/README.md by up to 2).

    # the tables of benchmarks/README.md are in benchmarks/tables/ (36 settings on digits, wine and
    # breast_cancer, 144 on digits); to score a grid for real again (digits: 1.5 and 7 minutes):
    OMP_NUM_THREADS=1 python benchmarks/tpe_replay.py record digits.json --data digits --space small
    python benchmarks/tpe_replay.py replay benchmarks/tables/*.json --seeds 50
    python benchmarks/tpe_replay.py replay benchmarks/tables/digits_small.json --method random
    python benchmarks/tpe_replay.py replay benchmarks/tables/digits_small.json \
        --sampler '{"n_startup_trials": 9, "multivariate": true}'   # other TPESampler arguments

Each replay prints one JSON line: the median, mean and quartiles over seeds 0..N-1 of the trained
trials until one scored at least as well as the grid's best, the share of seeds that got there
within a third of the grid, and what random order without repeats expects.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import tuning as bench  # benchmarks/tuning.py (this folder is on sys.path when run as a script)

from dlpipe import metrics

SPACES = bench.SPACES


def record(path: Path, data: str, space_name: str, epochs: int, patience: int) -> None:
    """Score every setting of the space once for real (grid search) and write the table."""
    space = SPACES[space_name]
    settings = bench.Settings(
        data=data,
        metric="rmse" if data in bench.REGRESSION_SETS else "log_loss",
        space=space,
        epochs=epochs,
        early_stopping=patience,
        trials=math.prod(len(v) for v in space.values()),
        seeds=[],
    )
    import optuna

    with tempfile.TemporaryDirectory(prefix="dlpipe-tpe-replay-") as tmp:
        found = bench.search(settings, Path(tmp), "grid", method="grid", pruner="none")
        # each trial's validation value after every epoch (with them a replay can prune)
        storage = f"sqlite:///{next(Path(tmp).rglob('study.db'))}"
        study = optuna.load_study(study_name="dlpipe", storage=storage)
        curves = {
            tuple(str(t.params[p]) for p in space): [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
            for t in study.trials
        }
    rows = [[values_of(space, key), value, curves[key]] for key, value in found.scores.items()]
    table = {
        "data": data,
        "metric": settings.metric,
        "space": space,
        "epochs": epochs,
        "early_stopping": patience,
        "grid_epochs": found.summary["epochs"],
        "grid_seconds": round(found.seconds, 1),
        "scores": rows,
    }
    path.write_text(dumps(table))
    print(f"{len(rows)} settings scored, {found.summary['epochs']} epochs, {found.seconds:.0f} s -> {path}")


def dumps(table: dict[str, Any]) -> str:
    """A table as JSON with one setting a line."""
    head = json.dumps({k: v for k, v in table.items() if k != "scores"}, indent=1)[:-2]
    rows = ",\n".join(f"  {json.dumps(row)}" for row in table["scores"])
    return f'{head},\n "scores": [\n{rows}\n ]\n}}\n'


class Table:
    """A grid scored once for real: each setting's validation value."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.space: dict[str, list[Any]] = table["space"]
        self.metric = metrics.get(table["metric"])
        self.scores = {tuple(row[0]): row[1] for row in table["scores"]}
        self.curves = {tuple(row[0]): row[2] for row in table["scores"] if len(row) > 2}
        values = list(self.scores.values())
        self.best = max(values) if self.metric.greater_is_better else min(values)

    def score(self, params: dict[str, Any]) -> float:
        return self.scores[tuple(params[p] for p in self.space)]

    def reached(self, value: float) -> bool:
        return value >= self.best if self.metric.greater_is_better else value <= self.best


LAST_ROWS: list[Any] = []  # the last replayed search's trials (for a look at epochs and pruning)


def replay_one(table: Table, tuning: dict[str, Any], seed: int, sampler: dict[str, Any] | None = None) -> list[float]:
    """dlpipe's search on one worker with training replaced by the table: the values of its trained
    (not repeated) trials, in order. `sampler` (exploration only) replaces make_sampler's TPE by
    `TPESampler(seed=seed, **sampler)`."""
    import optuna

    import dlpipe.tune.local as local
    from dlpipe.spec.tuning import Tuning

    cfg = Tuning.model_validate({"space": table.space, "seed": seed, "parallel": 1, **tuning})
    training = SimpleNamespace(epochs=40, early_stopping=8)
    search = SimpleNamespace(
        tuning=cfg,
        base=SimpleNamespace(problem=SimpleNamespace(metric=table.metric.name), training=training),
        deadline=None,
        time_left=lambda timeout: timeout,  # no run budget: the search's own timeout, if any
    )

    def from_table(_search: Any, params: dict[str, Any], report: Any, _threads: Any) -> Any:
        value = table.score(params)
        curve = table.curves.get(tuple(params[p] for p in table.space), [])
        for epoch, at in enumerate(curve, start=1):
            report(epoch, at)  # raises TrialPruned when the pruner cuts the trial
        return SimpleNamespace(
            state=SimpleNamespace(epoch=len(curve) or 1, best_epoch=0, best_loss=value, best_score=value), net=None
        )

    memory = optuna.storages.InMemoryStorage()  # the study in memory rather than SQLite: the same trials, faster
    memory.engine = SimpleNamespace(dispose=lambda: None)  # type: ignore[attr-defined]
    saved = local.run_trial, local.save_weights, local._storage, local.make_sampler
    local.run_trial, local.save_weights, local._storage = from_table, lambda *a, **k: None, lambda _tuning: memory
    if sampler is not None:
        local.make_sampler = lambda cfg, seed: _sampler(sampler, seed)
    try:
        with tempfile.TemporaryDirectory(prefix="dlpipe-tpe-replay-") as tmp:
            rows = local.search_local(search, Path(tmp))
            global LAST_ROWS
            LAST_ROWS = rows
    finally:
        local.run_trial, local.save_weights, local._storage, local.make_sampler = saved
    return [r.value for r in trained_rows(rows) if r.state == "complete"]


def trained_rows(rows: list[Any]) -> list[Any]:
    """A search's trials that trained (not repeats), in order."""
    return [r for r in sorted(rows, key=lambda r: r.number) if r.state != "repeat"]


def _sampler(arguments: dict[str, Any], seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, **arguments)


def to_reach(table: Table, values: list[float]) -> float:
    """Trained trials until one scored at least as well as the grid's best (inf: never)."""
    return next((i for i, v in enumerate(values, start=1) if table.reached(v)), math.inf)


def random_order_mean(table: Table) -> float:
    """Expected trials to the best when settings are drawn at random without repeats."""
    n, k = len(table.scores), sum(table.reached(v) for v in table.scores.values())
    return (n + 1) / (k + 1)


def reach(
    table: Table, tuning: dict[str, Any], seeds: Iterable[int], sampler: dict[str, Any] | None = None
) -> list[float]:
    """Trials to the grid's best, one search per sampler seed."""
    return [to_reach(table, replay_one(table, tuning, seed, sampler)) for seed in seeds]


def values_of(space: dict[str, list[Any]], key: tuple[str, ...]) -> list[Any]:
    """A setting as trials.csv writes it (text) as the space's values."""
    return [next(c for c in choices if str(c) == text) for choices, text in zip(space.values(), key, strict=True)]


def replay(path: Path, seeds: int, tuning: dict[str, Any], sampler: dict[str, Any] | None) -> dict[str, Any]:
    table = Table(json.loads(path.read_text()))
    n = len(table.scores)
    start = time.perf_counter()
    reached = reach(table, tuning, range(seeds), sampler)
    return {
        "table": path.name,
        "settings": n,
        "tuning": tuning,
        "sampler": sampler,
        "seeds": seeds,
        "median": statistics.median(reached),
        "mean": statistics.fmean(reached),
        "q25_q75": [float(x) for x in _quartiles(reached)],
        "within_third": sum(r <= n / 3 for r in reached) / seeds,
        "random_order": random_order_mean(table),
        "seconds": round(time.perf_counter() - start, 1),
    }


def prune(path: Path, seeds: int, trials: int | None, pruner: str = "median") -> dict[str, Any]:
    """Per seed the same TPE search without and with a pruner (the table's curves give the
    validation value after every epoch): epochs trained, and whether the pruned search's best is
    within 0.5% of the unpruned one's."""
    table = Table(json.loads(path.read_text()))
    if not table.curves:
        raise SystemExit(f"{path} has no curves: record it again")
    budget = trials or len(table.scores)
    ratios, within = [], []
    for seed in range(seeds):
        found = {}
        for key, rule in (("none", "none"), ("pruned", pruner)):
            values = replay_one(table, {"method": "tpe", "pruner": rule, "trials": budget}, seed)
            best = max(values) if table.metric.greater_is_better else min(values)
            found[key] = (best, sum(r.epochs for r in trained_rows(LAST_ROWS)))
        (none, epochs_none), (median, epochs_median) = found["none"], found["pruned"]
        ratios.append(epochs_median / epochs_none)
        worse = (median - none) / abs(none) if none else 0.0
        within.append((-worse if table.metric.greater_is_better else worse) <= 0.005)
    return {
        "table": path.name,
        "pruner": pruner,
        "seeds": seeds,
        "trials": budget,
        "epochs_ratio_median": round(statistics.median(ratios), 3),
        "within_half_percent": sum(within) / seeds,
    }


def _quartiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    q = statistics.quantiles([min(v, 1e9) for v in ordered], n=4, method="inclusive")
    return q[0], q[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="score a grid for real and write its table")
    rec.add_argument("table", type=Path)
    rec.add_argument("--data", default="digits")
    rec.add_argument("--space", default="small", choices=sorted(SPACES))
    rec.add_argument("--epochs", type=int, default=40)
    rec.add_argument("--early-stopping", type=int, default=8)
    rep = sub.add_parser("replay", help="replay the search against a table for many seeds")
    rep.add_argument("table", type=Path, nargs="+")
    rep.add_argument("--seeds", type=int, default=50)
    rep.add_argument("--method", default="tpe")
    rep.add_argument("--trials", type=int, default=None, help="budget (default: the grid's size)")
    rep.add_argument(
        "--sampler", default=None, help='exploration: TPESampler arguments as JSON, e.g. {"n_startup_trials": 5}'
    )
    pru = sub.add_parser("prune", help="TPE without and with a pruner against a table with curves")
    pru.add_argument("table", type=Path, nargs="+")
    pru.add_argument("--seeds", type=int, default=50)
    pru.add_argument("--trials", type=int, default=None, help="budget (default: the grid's size)")
    pru.add_argument("--pruner", default="median", help="median (default), percentile, asha or hyperband")
    args = parser.parse_args(argv)
    if args.command == "prune":
        for path in args.table:
            print(json.dumps(prune(path, args.seeds, args.trials, args.pruner)))
        return 0
    if args.command == "record":
        record(args.table, args.data, args.space, args.epochs, args.early_stopping)
        return 0
    sampler = json.loads(args.sampler) if args.sampler else None
    for path in args.table:
        size = len(json.loads(path.read_text())["scores"])
        tuning = {"method": args.method, "pruner": "none", "trials": args.trials or size}
        print(json.dumps(replay(path, args.seeds, tuning, sampler)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
