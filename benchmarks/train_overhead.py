"""Training throughput of dlpipe's own loop against a minimal hand-written PyTorch loop.

Both loops train the same `dlpipe.model.Net` (same initial weights, copied from one state_dict),
on the same tensors (the train split that `Pipeline.prepare()` produces from a synthetic table),
with the same batch size, the same AdamW settings and the same number of epochs. The only thing
that differs is the loop:

* dlpipe: `dlpipe.train.train_epoch`, exactly what `dlpipe.train.fit` runs each epoch (per-epoch
  seeding as in `fit`, per-step learning-rate schedule, `Head.loss`, loss accumulation);
* hand-written: randperm, slice each batch, forward, loss, zero_grad, backward, AdamW step.

After a warm-up, each round times both loops back to back from the same initial weights (the
order alternates every round); the headline is the median of the per-round ratios
dlpipe / hand-written (aim >= 0.95; the hand-written loop is the limit). A check first confirms
that, at a constant learning rate, both loops end with identical weights, i.e. do the same work.
The result is a ratio measured within one run, never an absolute timing: this script reports,
it does not assert, and always exits 0.

    OMP_NUM_THREADS=1 python benchmarks/train_overhead.py            # full run (about 15 s)
    OMP_NUM_THREADS=1 python benchmarks/train_overhead.py --quick    # smoke test (about 5 s)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from dlpipe.evaluate import to_tensors
from dlpipe.model import Head, Net
from dlpipe.pipeline import Pipeline
from dlpipe.train import Batches, lr_schedule, make_optimizer, train_epoch

SEED = 42


@dataclass
class Settings:
    """What to run: table size, batch size, epochs per timed run, rounds, threads and model size."""

    rows: int
    batch_size: int | str  # a number of rows, or "auto" (dlpipe's default, resolved by Pipeline.prepare)
    epochs: int
    rounds: int
    threads: int
    hidden: int
    layers: int


@dataclass
class Timing:
    """One timed run: rows trained on per wall-clock second and per CPU second, the loss afterwards."""

    rows_per_s: float
    rows_per_cpu_s: float
    train_loss: float = math.nan


class Stopwatch:
    """Wall-clock and process CPU time since construction (CPU time is less sensitive to other processes)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def timing(self, rows: int) -> Timing:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return Timing(rows / wall, rows / cpu)


def synthetic_table(rows: int, seed: int = SEED) -> pd.DataFrame:
    """A tabular classification problem: 8 numeric, 3 category and 3 binary columns, binary target."""
    rng = np.random.default_rng(seed)
    frame: dict[str, Any] = {}
    signal = np.zeros(rows)
    for i in range(8):
        x = rng.normal(size=rows) * (i + 1) + i
        x[rng.random(rows) < 0.02] = np.nan  # a few missing values, as real tables have
        frame[f"num_{i}"] = x
        signal += np.nan_to_num(x - i) / (i + 1) * rng.normal()
    for i, levels in enumerate((5, 20, 60)):
        codes = rng.integers(0, levels, size=rows)
        frame[f"cat_{i}"] = np.array([f"level_{c}" for c in range(levels)], dtype=object)[codes]
        signal += rng.normal(size=levels)[codes]
    for i in range(3):
        flag = rng.random(rows) < 0.3 + 0.2 * i
        frame[f"bin_{i}"] = np.where(flag, "yes", "no") if i % 2 == 0 else flag
        signal += flag * (1.0 - i)
    probability = 1 / (1 + np.exp(-(signal - signal.mean()) / signal.std() * 2))
    frame["y"] = np.where(rng.random(rows) < probability, "positive", "negative")
    return pd.DataFrame(frame)


def prepare(settings: Settings) -> tuple[Any, Batches]:
    """dlpipe's own preparation of the table; returns the Prepared object and the train split as tensors."""
    config = {
        "name": "bench",
        "problem": {"task": "classification", "target": "y"},
        "data": {"source": "unused.csv"},
        "model": {"hidden": settings.hidden, "layers": settings.layers},
        "training": {"batch_size": settings.batch_size, "epochs": settings.epochs},
    }
    prepared = Pipeline.from_dict(config, data=synthetic_table(settings.rows)).prepare()
    head = Head.for_preprocessor(prepared.preprocessor)
    split = prepared.splits["train"]
    train = Batches(to_tensors(split.inputs), torch.as_tensor(split.y, dtype=head.target_dtype))
    return prepared, train


@torch.inference_mode()
def train_loss(model: Net, train: Batches) -> float:
    """Mean loss on the whole train split in eval mode: a check that both loops really trained."""
    model.eval()
    loss = F.binary_cross_entropy_with_logits(model(train.inputs)[:, 0, 0], train.y)
    model.train()
    return float(loss)


def run_dlpipe(model: Net, head: Head, train: Batches, cfg: Any, epochs: int) -> Timing:
    """dlpipe's loop: the body of `fit`'s epoch loop without validation and checkpointing."""
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
    lr_at = lr_schedule(cfg.learning_rate, epochs * steps_per_epoch, cfg.warmup)
    step = 0
    watch = Stopwatch()
    for epoch in range(epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        generator = torch.Generator().manual_seed(cfg.seed * 100_019 + epoch)
        _, step = train_epoch(model, head, optimizer, lr_at, train, cfg.batch_size, generator, step)
    return watch.timing(len(train) * epochs)


def run_hand_written(model: Net, head: Head, train: Batches, cfg: Any, epochs: int) -> Timing:
    """The plain idiomatic PyTorch loop on the same tensors (constant learning rate, no bookkeeping)."""
    optimizer = make_optimizer(model, cfg)
    inputs, y, n, batch_size = train.inputs, train.y, len(train), cfg.batch_size
    watch = Stopwatch()
    model.train()
    for epoch in range(epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        generator = torch.Generator().manual_seed(cfg.seed * 100_019 + epoch)
        order = torch.randperm(n, generator=generator)
        for begin in range(0, n, batch_size):
            idx = order[begin : begin + batch_size]
            if len(idx) < 2:
                continue  # batch norm cannot train on one row; dlpipe skips it too
            logits = model({k: v[idx] for k, v in inputs.items()})
            loss = F.binary_cross_entropy_with_logits(logits[:, 0, 0], y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return watch.timing(n * epochs)


Loop = Callable[[Net, Head, Batches, Any, int], Timing]
LOOPS: dict[str, Loop] = {"dlpipe": run_dlpipe, "hand-written": run_hand_written}


def same_work(model: Net, head: Head, train: Batches, cfg: Any, initial: dict[str, torch.Tensor]) -> float:
    """Max weight difference after one epoch of each loop on 2,000 rows, dlpipe at a constant learning rate.

    Zero (or float noise) shows the two loops do the same work: same batches, same dropout masks, same steps.
    """
    subset = Batches({k: v[:2000] for k, v in train.inputs.items()}, train.y[:2000])
    weights = []
    for constant_lr in (True, False):
        model.load_state_dict(initial)
        if constant_lr:
            optimizer = make_optimizer(model, cfg)
            torch.manual_seed(cfg.seed * 100_003)
            generator = torch.Generator().manual_seed(cfg.seed * 100_019)
            constant = lambda _: cfg.learning_rate  # noqa: E731
            train_epoch(model, head, optimizer, constant, subset, cfg.batch_size, generator, 0)
        else:
            run_hand_written(model, head, subset, cfg, 1)
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return max(float((weights[0][k].double() - weights[1][k].double()).abs().max()) for k in weights[0])


def paired_ratios(runs: list[Timing], baseline: list[Timing], key: str = "rows_per_s") -> list[float]:
    """Round by round, the throughput `key` of `runs` over that of `baseline`."""
    return [getattr(a, key) / getattr(b, key) for a, b in zip(runs, baseline, strict=True)]


def measure(settings: Settings) -> dict[str, Any]:
    """Warm up, then `rounds` rounds timing every loop back to back from the same initial weights."""
    load_before = os.getloadavg()[0]
    clock = time.perf_counter()
    prepared, train = prepare(settings)
    prepare_seconds = time.perf_counter() - clock
    spec, cfg = prepared.spec, prepared.spec.training
    head = Head.for_preprocessor(prepared.preprocessor)
    if head.kind != "binary" or spec.model.ensemble != 1:
        raise RuntimeError(f"expected a binary head, one ensemble member: {head.kind}/{spec.model.ensemble}")
    torch.manual_seed(cfg.seed)
    model = Net(prepared.preprocessor, spec.model)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}

    difference = same_work(model, head, train, cfg, initial)
    loops = LOOPS

    def timed(name: str, epochs: int) -> Timing:
        model.load_state_dict(initial)  # every run starts from identical weights
        timing = loops[name](model, head, train, cfg, epochs)
        timing.train_loss = train_loss(model, train)  # outside the timed section
        return timing

    for name in loops:  # warm-up: allocator, dispatcher caches, lazy imports
        timed(name, 1)
    results: dict[str, list[Timing]] = {name: [] for name in loops}
    names = list(loops)
    for r in range(settings.rounds):
        for name in names if r % 2 == 0 else reversed(names):
            results[name].append(timed(name, settings.epochs))
    return {
        "results": results,
        # Each round runs the loops back to back, so a round's ratio sees (nearly) the same machine
        # load; the median of those paired ratios is the headline, the least disturbed by other work.
        "ratios": {
            key: paired_ratios(results["dlpipe"], results["hand-written"], key)
            for key in ("rows_per_s", "rows_per_cpu_s")
        },
        "same_work": difference,
        "load": (load_before, os.getloadavg()[0]),
        "train_rows": len(train),
        "inputs": {k: tuple(v.shape) for k, v in train.inputs.items()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps_per_epoch": sum(1 for i in range(0, len(train), cfg.batch_size) if len(train) - i >= 2),
        "prepare_seconds": prepare_seconds,
        "cfg": cfg,
        "model": spec.model,
    }


def report(settings: Settings, out: dict[str, Any]) -> str:
    """The result as a small plain-text table."""
    lines = [
        "dlpipe training-loop overhead (dlpipe.train.train_epoch vs a hand-written PyTorch loop)",
        f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}, "
        f"torch threads {torch.get_num_threads()} (interop {torch.get_num_interop_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs)",
        f"table rows {settings.rows} -> train rows {out['train_rows']}, batch size {out['cfg'].batch_size}"
        f"{' (auto)' if settings.batch_size == 'auto' else ''}, "
        f"{out['steps_per_epoch']} steps/epoch, {settings.epochs} epoch(s)/round, {settings.rounds} rounds",
        f"model: Net layers={out['model'].layers} hidden={out['model'].hidden} norm={out['model'].norm} "
        f"dropout={out['model'].dropout}, {out['parameters']} parameters; inputs "
        + ", ".join(f"{k}{list(s)}" for k, s in out["inputs"].items()),
        f"AdamW lr={out['cfg'].learning_rate} weight_decay={out['cfg'].weight_decay} "
        "(dlpipe's param groups, in both loops)",
        "",
        f"{'loop':<26}{'rows/s median':>14}{'rows/s best':>13}{'rows/CPU-s median':>19}{'train loss':>12}",
    ]
    for name, runs in out["results"].items():
        wall = [t.rows_per_s for t in runs]
        cpu = statistics.median(t.rows_per_cpu_s for t in runs)
        loss = statistics.median(t.train_loss for t in runs)
        lines.append(f"{name:<26}{statistics.median(wall):>14,.0f}{max(wall):>13,.0f}{cpu:>19,.0f}{loss:>12.4f}")
    wall, cpu = (out["ratios"][key] for key in ("rows_per_s", "rows_per_cpu_s"))
    ratio = statistics.median(wall)
    verdict = "meets" if ratio >= 0.95 else "BELOW"
    results = out["results"]
    best = max(t.rows_per_s for t in results["dlpipe"]) / max(t.rows_per_s for t in results["hand-written"])
    lines += [
        "",
        f"ratio dlpipe / hand-written: {ratio:.3f}  ({verdict} the 0.95 aim; wall clock, median of "
        f"{len(wall)} paired rounds)",
        "  per round: " + " ".join(f"{r:.3f}" for r in wall),
        f"  by process CPU time: {statistics.median(cpu):.3f} (per round: " + " ".join(f"{r:.3f}" for r in cpu) + ")",
        f"  of the best wall-clock runs: {best:.3f}",
    ]
    load = " -> ".join(f"{a:.2f}" for a in out["load"])
    lines += [
        f"1-minute load average before -> after: {load} (above ~0 means other processes shared the cores)",
        f"check: at a constant learning rate both loops end with the same weights (max abs difference "
        f"{out['same_work']:.2g}); the timed dlpipe runs use its warm-up + cosine schedule",
        f"(data preparation took {out['prepare_seconds']:.1f} s and is not part of the timing)",
    ]
    return "\n".join(lines)


def batch_size(text: str) -> int | str:
    """The --batch-size argument: `auto` or a whole number."""
    return text if text == "auto" else int(text)


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="rows of the synthetic table (default 40000)")
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        default="auto",
        help="rows per step, or auto (default; dlpipe's default: train rows / 16 as a power of two, 32..512)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs per timed run (default 1)")
    parser.add_argument("--rounds", type=int, default=None, help="timed runs of each loop (default 15)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden width (dlpipe's default: 128)")
    parser.add_argument("--layers", type=int, default=2, help="hidden layers (dlpipe's default: 2)")
    parser.add_argument("--quick", action="store_true", help="a small, fast run for smoke tests (< 30 s)")
    args = parser.parse_args(argv)
    quick = {"rows": 8_000, "epochs": 1, "rounds": 9}
    full = {"rows": 40_000, "epochs": 1, "rounds": 15}
    defaults = quick if args.quick else full
    return Settings(
        rows=args.rows or defaults["rows"],
        batch_size=args.batch_size,
        epochs=args.epochs or defaults["epochs"],
        rounds=args.rounds or defaults["rounds"],
        threads=args.threads,
        hidden=args.hidden,
        layers=args.layers,
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    torch.set_num_threads(settings.threads)
    try:
        print(report(settings, measure(settings)))
    except Exception:  # a report, not a test: show what failed, still exit 0
        traceback.print_exc()
        print("benchmark failed; no result", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
