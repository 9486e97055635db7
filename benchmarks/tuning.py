"""Tuning: what pruning saves, and how many trials TPE needs to match a full grid search.

Every search below is a real run (`Pipeline.from_dict(config).run(tmp)`, Optuna, one worker,
one torch thread) on one data set and one search space written as lists, so that grid search
can run it too. The default is scikit-learn's bundled digits (1,797 rows, 64 pixel columns,
10 classes) scored by validation log loss, over learning rate x dropout x hidden width
(4 x 3 x 3 = 36 points; `--space large` adds layers 1-4: 144 points), each trial at most 40
epochs with early stopping after 8. Training is
seeded, so a setting scores the same in every search; the script checks that.

1. Pruning: for each TPE sampler seed (42, 0, 1, 2), the same search with `pruner: none` and
   with `--pruner` (default `percentile`), the same number of trials (`--trials`, default the grid's
   size). Reported per seed: epochs
   trained over all trials (`summary.json`), seconds, the best validation score of each, and what
   became of the grid's best setting in the pruned search; then the median over seeds of the
   epoch ratio. Aims: the pruned search trains >= 40% fewer epochs, and its best score is within
   0.5% (relative) of the unpruned one.
2. Model-based search: the whole grid, against the unpruned TPE searches of part 1 (each capped
   at the grid's size). Reported per seed: after how many trials TPE first scored at least as
   well as the grid's best (`trials.csv`, complete trials in order), the same for the pruned
   search, and how many distinct settings the trials covered; then the median over seeds ("never"
   counts as above the cap). Aim: TPE needs <= 1/3 of the grid's trials. Four seeds are luck
   either way, so the unpruned search is then replayed for seeds 0-49 with training replaced by
   the grid's scores (benchmarks/tpe_replay.py: dlpipe's own search loop; exact, since training
   is seeded, and checked: the replay of the four seeds above must give their figures), with
   random search beside it.

All figures are measured within one run and reported as ratios; this script reports, it does
not assert, and always exits 0.

    OMP_NUM_THREADS=1 python benchmarks/tuning.py            # 10-14 minutes on 2 cores
    OMP_NUM_THREADS=1 python benchmarks/tuning.py --quick    # smoke test: 8-point space, 10 epochs (about 30 s)
    python benchmarks/tuning.py --seeds 42,0,1 --data breast_cancer --epochs 60
    OMP_NUM_THREADS=1 python benchmarks/tuning.py --space large --trials 48   # about 40 minutes
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dlpipe import metrics
from dlpipe.pipeline import Pipeline

SPACE: dict[str, list[Any]] = {
    "training.learning_rate": [0.0003, 0.001, 0.003, 0.01],
    "model.dropout": [0.0, 0.25, 0.5],
    "model.hidden": [32, 128, 512],
}
SPACES: dict[str, dict[str, list[Any]]] = {
    "small": SPACE,  # 36 settings: learning rate x dropout x hidden
    "large": {**SPACE, "model.layers": [1, 2, 3, 4]},  # 144 settings: four dimensions, where a grid costs most
}
QUICK_SPACE: dict[str, list[Any]] = {
    "training.learning_rate": [0.0003, 0.01],
    "model.dropout": [0.0, 0.5],
    "model.hidden": [32, 128],
}
SEEDS = [42, 0, 1, 2]
REPLAY_SEEDS = 50  # TPE replayed against the grid's scores: many seeds for a median that four cannot give
REGRESSION_SETS = {"diabetes"}


@dataclass
class Settings:
    """What to run: the data set and metric, the space, epochs per trial, trials per search, TPE seeds."""

    data: str
    metric: str
    space: dict[str, list[Any]]
    epochs: int
    early_stopping: int
    trials: int  # per TPE search (both parts); the grid runs every point once
    seeds: list[int]
    pruner: str = "percentile"  # the pruned searches' pruner

    @property
    def points(self) -> int:
        return math.prod(len(v) for v in self.space.values())


@dataclass
class Search:
    """One search as its run folder recorded it."""

    label: str
    rows: list[dict[str, str]]  # trials.csv
    summary: dict[str, Any]  # summary.json
    seconds: float
    scores: dict[tuple[str, ...], float] = field(default_factory=dict)  # setting -> value of complete trials

    def count(self, state: str) -> int:
        return sum(r["state"] == state for r in self.rows)

    @property
    def best(self) -> float:
        return float(self.summary["best"]["value"])


def config(settings: Settings, tuning: dict[str, Any]) -> dict[str, Any]:
    task = "regression" if settings.data in REGRESSION_SETS else "classification"
    return {
        "name": f"tuning-{settings.data}",
        "problem": {"task": task, "target": "target", "metric": settings.metric},
        "data": {"source": {"builtin": settings.data}},
        "training": {"epochs": settings.epochs, "early_stopping": settings.early_stopping, "threads": 1},
        "tuning": {"parallel": 1, "space": settings.space, **tuning},
    }


def search(settings: Settings, runs: Path, label: str, **tuning: Any) -> Search:
    """Run one search in a fresh folder under `runs` and read back trials.csv and summary.json."""
    start = time.perf_counter()
    result = Pipeline.from_dict(config(settings, tuning)).run(runs / label)
    seconds = time.perf_counter() - start
    folder = result.folder / "tuning"
    with (folder / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    found = Search(label, rows, json.loads((folder / "summary.json").read_text()), seconds)
    for r in rows:
        if r["state"] == "complete":
            found.scores[tuple(r[p] for p in settings.space)] = float(r["value"])
    print(f"  {label}: {len(rows)} trials, {found.summary['epochs']} epochs, {seconds:.0f} s", file=sys.stderr)
    return found


def trained(found: Search) -> list[dict[str, str]]:
    """The trials that trained, in order: a repeat (a setting proposed again) reuses a result and
    spends no budget, so it is not counted."""
    return [r for r in sorted(found.rows, key=lambda r: int(r["number"])) if r["state"] != "repeat"]


def trials_to_reach(found: Search, target: float, greater_is_better: bool) -> int | None:
    """How many trained trials it took until one scored at least as well as `target`; None if none did."""
    for position, r in enumerate(trained(found), start=1):
        if r["state"] != "complete":
            continue
        value = float(r["value"])
        if (value >= target) if greater_is_better else (value <= target):
            return position
    return None


def best_after(found: Search, trials: int, greater_is_better: bool) -> float | None:
    """The best complete value among the first `trials` trained trials."""
    values = [float(r["value"]) for r in trained(found)[:trials] if r["state"] == "complete"]
    if not values:
        return None
    return max(values) if greater_is_better else min(values)


def setting(row: dict[str, str], space: dict[str, list[Any]]) -> tuple[str, ...]:
    return tuple(row[p] for p in space)


def fate(found: Search, wanted: tuple[str, ...], space: dict[str, list[Any]]) -> str:
    """What became of one setting in a search: never drawn, complete, or pruned at some epoch."""
    for r in sorted(found.rows, key=lambda r: int(r["number"])):
        if setting(r, space) == wanted:
            return f"#{r['number']} pruned@{r['epochs']}" if r["state"] == "pruned" else f"#{r['number']} {r['state']}"
    return "never drawn"


def measure(settings: Settings) -> dict[str, Any]:
    """Per seed TPE without and with the pruner, then the whole grid."""
    out: dict[str, Any] = {"none": [], "pruned": []}
    with tempfile.TemporaryDirectory(prefix="dlpipe-tuning-bench-") as tmp:
        runs = Path(tmp)
        for seed in settings.seeds:
            for key, pruner in (("none", "none"), ("pruned", settings.pruner)):
                out[key].append(
                    search(
                        settings,
                        runs,
                        f"tpe-{seed}-{key}",
                        method="tpe",
                        seed=seed,
                        trials=settings.trials,
                        pruner=pruner,
                    )
                )
        out["grid"] = search(settings, runs, "grid", method="grid", pruner="none")
    return out


def consistency(searches: list[Search]) -> tuple[int, float]:
    """Settings scored by more than one search, and the largest difference between their scores."""
    seen: dict[tuple[str, ...], list[float]] = {}
    for s in searches:
        for key, value in s.scores.items():
            seen.setdefault(key, []).append(value)
    shared = [v for v in seen.values() if len(v) > 1]
    return len(shared), max((max(v) - min(v) for v in shared), default=0.0)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{p.split('.')[-1]} {v}" for p, v in params.items())


def report(settings: Settings, out: dict[str, Any]) -> str:
    metric = metrics.get(settings.metric)
    up = metric.greater_is_better
    nones, pruneds, grid = out["none"], out["pruned"], out["grid"]
    pruner = settings.pruner
    space = " x ".join(f"{p} {v}" for p, v in settings.space.items())
    grid_best = next(setting(r, settings.space) for r in grid.rows if int(r["number"]) == grid.summary["best"]["trial"])
    lines = [
        f"tuning benchmark: builtin {settings.data}, validation {metric.name} "
        f"({'higher' if up else 'lower'} is better); epochs {settings.epochs}, "
        f"early_stopping {settings.early_stopping}",
        f"space ({settings.points} points): {space}",
        f"torch threads {torch.get_num_threads()} (training.threads 1), parallel 1 (one worker); "
        f"python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores, 1-minute load {os.getloadavg()[0]:.2f}",
        "",
        f"grid: {len(grid.rows)} trials, {grid.summary['epochs']} epochs, {grid.seconds:.0f} s; best {grid.best:.6f} "
        f"({describe(grid.summary['best']['params'])}); second best "
        f"{fmt(sorted(grid.scores.values(), reverse=up)[1] if len(grid.scores) > 1 else None)}",
        "",
        f"1. pruning: TPE with the same sampler seed, pruner none against {pruner}, {settings.trials} trials each",
        f"{'seed':<6}{'epochs none':>12}{pruner:>11}{'ratio':>7}{'s none':>8}{pruner:>11}"
        f"{'best none':>11}{pruner:>11}{'worse by':>10}{'pruned':>8}  grid's best setting in the pruned search",
    ]
    ratios, worse = [], []
    for seed, none, pruned in zip(settings.seeds, nones, pruneds, strict=True):
        ratios.append(pruned.summary["epochs"] / none.summary["epochs"])
        relative = (pruned.best - none.best) / abs(none.best) if none.best else 0.0
        worse.append(-relative if up else relative)
        lines.append(
            f"{seed:<6}{none.summary['epochs']:>12}{pruned.summary['epochs']:>11}{ratios[-1]:>7.2f}"
            f"{none.seconds:>8.0f}{pruned.seconds:>11.0f}{none.best:>11.6f}{pruned.best:>11.6f}{worse[-1]:>+10.1%}"
            f"{pruned.count('pruned'):>8}  {fate(pruned, grid_best, settings.space)}"
        )
    epochs_none = sum(s.summary["epochs"] for s in nones)
    epochs_pruned = sum(s.summary["epochs"] for s in pruneds)
    seconds = sum(s.seconds for s in pruneds) / sum(s.seconds for s in nones)
    ratio = statistics.median(ratios)
    within = sum(w <= 0.005 for w in worse)
    lines += [
        "",
        f"ratio epochs pruned / unpruned ({pruner}): {ratio:.2f} (median over {len(ratios)} seeds, "
        f"{1 - ratio:.0%} fewer; aim >= 40% fewer); all seeds together {epochs_pruned / epochs_none:.2f}, "
        f"seconds {seconds:.2f}",
        f"best score pruned against unpruned: median {statistics.median(worse):+.1%} "
        f"({'worse' if statistics.median(worse) > 0 else 'not worse'}); within 0.5% on {within} of {len(worse)} "
        f"seeds (aim within 0.5% relative)",
        "",
        f"2. grid ({settings.points} trials) against TPE without pruning, at most {settings.trials} trials per seed",
        f"{'seed':<6}{'trials to reach':>16}{'with pruner':>12}{'best after ' + str(max(1, settings.points // 3)):>16}"
        f"{'best after ' + str(settings.trials):>16}{'distinct settings':>19}",
    ]
    reached: list[float] = []
    third = max(1, settings.points // 3)
    for seed, none, pruned in zip(settings.seeds, nones, pruneds, strict=True):
        n = trials_to_reach(none, grid.best, up)
        pruned_n = trials_to_reach(pruned, grid.best, up)
        reached.append(math.inf if n is None else n)
        distinct = len({setting(r, settings.space) for r in trained(none)})
        lines.append(
            f"{seed:<6}{'never' if n is None else str(n):>16}{'never' if pruned_n is None else str(pruned_n):>12}"
            f"{fmt(best_after(none, third, up)):>16}{fmt(best_after(none, settings.trials, up)):>16}"
            f"{distinct:>13} of {len(trained(none))} trained ({none.count('repeat')} repeats reused)"
        )
    middle = statistics.median(reached)
    hits = sum(math.isfinite(r) for r in reached)
    shown = "never" if math.isinf(middle) else f"{middle:g}"
    median_ratio = "above 1" if math.isinf(middle) else f"{middle / settings.points:.2f}"
    lines.append("")
    lines.append(
        f"TPE trials to reach grid's best: median {shown} over {len(reached)} seeds "
        f"(reached within {settings.trials} trials by {hits} of {len(reached)}); "
        f"ratio to the grid's {settings.points} trials: {median_ratio} (aim <= 0.33)"
    )
    lines += replayed(settings, grid, reached)
    shared, spread = consistency([*nones, *pruneds, grid])
    lines.append(
        f"check: {shared} settings were scored by more than one search; largest difference between "
        f"their scores {spread:.2g} ({'identical' if spread == 0 else 'NOT identical: training is not deterministic'})"
    )
    return "\n".join(lines)


def replayed(settings: Settings, grid: Search, real: list[float]) -> list[str]:
    """The unpruned searches again, many seeds: dlpipe's search loop against the grid's scores."""
    import tpe_replay  # benchmarks/tpe_replay.py

    table = tpe_replay.Table(
        {
            "space": settings.space,
            "metric": settings.metric,
            "scores": [[tpe_replay.values_of(settings.space, key), value] for key, value in grid.scores.items()],
        }
    )
    budget = {"pruner": "none", "trials": settings.trials}
    again = tpe_replay.reach(table, {"method": "tpe", **budget}, settings.seeds)
    same = all(a == b for a, b in zip(again, real, strict=True))
    seeds = range(REPLAY_SEEDS)
    tpe = tpe_replay.reach(table, {"method": "tpe", **budget}, seeds)
    rnd = tpe_replay.reach(table, {"method": "random", **budget}, seeds)

    def summary(found: list[float]) -> str:
        q1, _, q3 = statistics.quantiles([min(f, 1e9) for f in found], n=4, method="inclusive")
        hits = sum(f <= settings.points / 3 for f in found)
        share = hits / len(found)
        return f"median {statistics.median(found):g} (quartiles {q1:g}-{q3:g}; within a third of the grid {share:.0%})"

    return [
        "",
        f"replayed against the grid's scores (training is seeded: a setting scores as above), "
        f"sampler seeds 0-{REPLAY_SEEDS - 1}:",
        f"  TPE {summary(tpe)}; ratio to the grid's {settings.points} trials: "
        f"{statistics.median(tpe) / settings.points:.2f}",
        f"  random search {summary(rnd)}; random order without repeats expects "
        f"{tpe_replay.random_order_mean(table):.1f}",
        f"  check: the replay of seeds {', '.join(map(str, settings.seeds))} needs "
        f"{', '.join('never' if math.isinf(a) else f'{a:g}' for a in again)} trials "
        f"({'as the real searches did' if same else 'NOT as the real searches did'})",
    ]


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", help="a builtin data set (default digits)")
    parser.add_argument("--metric", default=None, help="validation metric (default log_loss; rmse for diabetes)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial at most (default 40)")
    parser.add_argument("--early-stopping", type=int, default=None, help="patience in epochs (default 8)")
    parser.add_argument("--trials", type=int, default=None, help="trials per TPE search (default: the grid's size)")
    parser.add_argument("--seeds", default=None, help=f"TPE sampler seeds, comma-separated (default {SEEDS})")
    parser.add_argument("--space", default="small", choices=sorted(SPACES), help="small: 36 settings; large: 144")
    parser.add_argument(
        "--pruner", default="percentile", help="the pruned searches' pruner (default percentile; median, asha, ...)"
    )
    parser.add_argument("--quick", action="store_true", help="8-point space, 10 epochs, 2 seeds (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        space, epochs, patience, seeds = QUICK_SPACE, 10, 3, [42, 0]
    else:
        space, epochs, patience, seeds = SPACES[args.space], 40, 8, SEEDS
    points = math.prod(len(v) for v in space.values())
    return Settings(
        data=args.data,
        metric=args.metric or ("rmse" if args.data in REGRESSION_SETS else "log_loss"),
        space=space,
        epochs=args.epochs or epochs,
        early_stopping=patience if args.early_stopping is None else args.early_stopping,
        trials=args.trials or points,
        seeds=[int(s) for s in args.seeds.split(",")] if args.seeds else seeds,
        pruner=args.pruner,
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    try:
        out = measure(settings)
        print(report(settings, out))
        print(f"\nwall time {time.perf_counter() - start:.0f} s")
    except Exception:  # a report, not a test: show what failed, still exit 0
        traceback.print_exc()
        print("benchmark failed; no result", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
