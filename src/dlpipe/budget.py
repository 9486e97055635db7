"""The wall-clock budget of a run (`budget:` in pipeline.yaml): when training must end so that the
whole run, from `Pipeline.run` to its model folder and report, keeps it.

What follows training (the decision, evaluation, packaging with the ONNX export and its check,
the report) is reserved. Its cost is mostly the ONNX exporter's fixed work, about the same CPU time
on any table (1.1-2.4 s measured for tabular networks), but the wall time it takes depends on how
much of a core this process gets: on a shared machine it took 4-12 s. So the reserve is that CPU
cost divided by the share of a core the run has had so far (CPU time over wall time), with a
margin. Training gets the rest: once its first epoch is timed it plans as many epochs as fit (the
learning-rate schedule then ends with them), and it stops before an epoch that would overrun,
keeping its best epoch. A search stops starting trials when its time is up, and a trial stops like
training does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

AFTER_TRAINING_CPU = 1.5  # CPU seconds after training (decide, evaluate, package with ONNX, report): 1.1-1.5
COLD_EXPORT_CPU = 1.2  # more the first time a process exports (the exporter's libraries load): 2.4 in all
WITHOUT_ONNX_CPU = 0.5  # the same when packaging skips the ONNX export (DLPIPE_ONNX=off)
EVALUATION_EPOCHS = 0.5  # evaluation passes every split forward once: about half an epoch's time
MARGIN = 1.3  # on the estimate of what follows training: the load can rise while it runs
MIN_SHARE = 0.05  # a run that got less than this of a core is treated as getting this much

Deadline = Callable[[float], float]  # the last epoch's seconds -> when training must end (time.time())


class Budget:
    """A run's clock; `seconds` None means no budget (training ends as configured)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.wall0, self.cpu0 = time.time(), time.process_time()
        self.since = (self.wall0, self.cpu0)  # where the share of a core is measured from
        self.reserved = 0.0
        self.planned: int | None = None  # epochs the budget left room for, when fewer than configured
        self.cut = False  # training stopped before an epoch that would have overrun

    def share(self) -> float:
        """The share of one core this process has had since training started, or the run when
        that is too recent to tell (at most 1: the ONNX export after training is single-threaded)."""
        for wall0, cpu0 in (self.since, (self.wall0, self.cpu0)):
            wall = time.time() - wall0
            if wall >= 0.25:
                return min(1.0, max(MIN_SHARE, (time.process_time() - cpu0) / wall))
        return 1.0

    def training_starts(self) -> None:
        """Measure the share from here: reading files and importing libraries wait on the disk,
        and would make a busy machine look busier than training finds it."""
        self.since = (time.time(), time.process_time())

    def deadline(self, epoch_seconds: float = 0.0) -> float:
        """When training must end: the budget's end less the reserve for what follows, recomputed
        from the share of a core the run gets now. Infinite without a budget."""
        if self.seconds is None:
            return float("inf")
        from dlpipe.package import onnx_wanted

        cpu = WITHOUT_ONNX_CPU
        if onnx_wanted():
            cpu = AFTER_TRAINING_CPU + (0.0 if "onnxscript" in sys.modules else COLD_EXPORT_CPU)
        self.reserved = MARGIN * (cpu / self.share() + EVALUATION_EPOCHS * epoch_seconds)
        return self.wall0 + self.seconds - self.reserved

    def elapsed(self) -> float:
        return time.time() - self.wall0

    def to_dict(self, epochs: int) -> dict[str, Any]:
        """What metrics.json records of the budget (null without one)."""
        return {
            "seconds": self.seconds,
            "reserved_after_training": round(self.reserved, 2),
            "epochs_configured": epochs,
            "epochs_planned": self.planned,
            "cut": self.cut or self.planned is not None,
            "seconds_to_metrics": round(self.elapsed(), 2),
        }

    def describe(self, epochs: int, ran: int) -> list[str]:
        """A line for the terminal when the budget shortened training."""
        if self.planned is None and not self.cut:
            return []
        why = f"planned {self.planned} of {epochs} epochs" if self.planned is not None else f"{epochs} epochs planned"
        stop = f"; stopped after epoch {ran}: the next would overrun" if self.cut else ""
        return [
            f"budget {self.seconds:g} s cut training: {why}{stop} "
            f"({self.reserved:.1f} s reserved for evaluation and packaging)"
        ]


class EpochClock:
    """What the training loop asks of a budget: does another epoch fit, and how many fit at all."""

    def __init__(self, deadline: Deadline, budget: Budget | None = None) -> None:
        # with `budget` (the run's own training) it plans epochs and records the cut; a trial only stops
        self.deadline, self.budget = deadline, budget
        if budget is not None:
            budget.training_starts()
        self.epoch_seconds: list[float] = []
        self.started = time.time()

    def next_fits(self) -> bool:
        """Whether one more epoch, as long as the slowest of the last three, ends before the deadline.
        The first always runs: a model needs weights."""
        now = time.time()
        self.started = now
        if not self.epoch_seconds:
            return True
        longest = max(self.epoch_seconds[-3:])
        fits = now + longest <= self.deadline(longest)
        if not fits and self.budget is not None:
            self.budget.cut = True
        return fits

    def epoch_done(self, done: int, epochs: int) -> int:
        """Times the epoch just run (`done` epochs so far); returns the epochs that fit, when fewer
        than `epochs`. Planned again after every epoch, as the load changes: the schedule only ever
        shortens."""
        self.epoch_seconds.append(time.time() - self.started)
        if self.budget is None:
            return epochs
        seconds = sum(self.epoch_seconds[-3:]) / len(self.epoch_seconds[-3:])
        left = (self.deadline(seconds) - time.time()) / max(seconds, 1e-6)
        fit = done + max(0, int(left))
        if fit < epochs:
            self.budget.planned = fit
        return min(fit, epochs)
