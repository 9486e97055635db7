"""One trial: the base pipeline with a trial's parameters, trained on the training split and scored
on validation after every epoch. The test split is never seen here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlpipe.spec.tuning import tuning_of
from dlpipe.tune.space import touches_features, trial_spec

if TYPE_CHECKING:
    import torch

    from dlpipe.checkpoint import TrainState
    from dlpipe.collect import Collected
    from dlpipe.model import Head, Net
    from dlpipe.prepare import Prepared
    from dlpipe.spec import PipelineSpec, Tuning

# (epoch, validation value) after every epoch; raises to stop a trial the pruner cuts
Report = Callable[[int, float], None]


@dataclass
class Search:
    """What every trial starts from: the resolved pipeline, its prepared data, and (when the space
    changes preprocessing) the collected data to prepare again."""

    base: PipelineSpec
    prepared: Prepared
    # only kept when trials prepare again: Ray ships a Search to every worker
    collected: tuple[Collected, Collected | None, Collected | None] | None = None
    deadline: float | None = None  # a run's budget (time.time()): no trial starts, or trains an epoch, past it

    def time_left(self, timeout: float | None) -> float | None:
        """Seconds the search may start trials for: `tuning.timeout`, within the run's budget."""
        import time

        left = None if self.deadline is None else max(0.0, self.deadline - time.time())
        return min((t for t in (timeout, left) if t is not None), default=None)

    @property
    def tuning(self) -> Tuning:
        return tuning_of(self.base)

    def prepared_for(self, spec: PipelineSpec) -> Prepared:
        if not touches_features(self.tuning.space):
            return self.prepared
        from dlpipe.prepare import prepare

        if self.collected is None:
            raise ValueError("a search over features.* settings needs the collected data to prepare again")
        return prepare(spec, *self.collected)


@dataclass
class TrialResult:
    spec: PipelineSpec
    prepared: Prepared
    net: Net
    head: Head
    state: TrainState


def run_trial(search: Search, params: dict[str, Any], report: Report, threads: int | None = None) -> TrialResult:
    """Train one configuration; `report` hears the validation metric after every epoch."""
    from dlpipe.train import fit_network

    spec = trial_spec(search.base, params)
    prepared = search.prepared_for(spec)

    def on_epoch(record: dict[str, Any], state: TrainState) -> None:
        report(record["epoch"], record["validation"])

    from dlpipe.budget import EpochClock

    deadline = search.deadline
    clock = None if deadline is None else EpochClock(lambda _: deadline)
    net, head, state = fit_network(prepared, spec, on_epoch=on_epoch, threads=threads, clock=clock)
    return TrialResult(spec, prepared, net, head, state)


def save_weights(path: Path, net: torch.nn.Module, state: TrainState, params: dict[str, Any]) -> None:
    """A trial's kept weights, with its training history and parameters as metadata; atomic."""
    from safetensors.torch import save_file

    from dlpipe.package import strict_json
    from dlpipe.rundir import replacing

    meta = {
        "state": json.dumps(strict_json(state.__dict__), allow_nan=False),
        "params": json.dumps(strict_json(params), allow_nan=False),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata=meta)


def load_weights(path: Path, net: torch.nn.Module) -> TrainState:
    """Load a trial's weights into `net`; returns the trial's training state (history, best epoch)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from dlpipe.checkpoint import state_from_json

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    net.load_state_dict(load_file(str(path)))
    return state_from_json(meta["state"])
