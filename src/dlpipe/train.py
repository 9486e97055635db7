"""The training loop: AdamW, warm-up + cosine schedule, early stopping, a checkpoint every epoch.

Every epoch's randomness (shuffling, dropout) is seeded from (seed, epoch), so a run resumed
from its checkpoint takes exactly the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dlpipe.checkpoint import TrainState, load_checkpoint, save_checkpoint
from dlpipe.model import Head
from dlpipe.rundir import CHECKPOINT

if TYPE_CHECKING:
    from dlpipe.budget import Budget, EpochClock
    from dlpipe.model import Net
    from dlpipe.pipeline import Reporter
    from dlpipe.prepare import Prepared
    from dlpipe.spec import PipelineSpec, Training


@dataclass
class Batches:
    """A split as tensors, sliced into batches by row index."""

    inputs: dict[str, torch.Tensor]
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {k: v[idx] for k, v in self.inputs.items()}, self.y[idx]

    def batches(
        self, batch_size: int, generator: torch.Generator, replica: Replica | None = None
    ) -> Iterator[tuple[dict, torch.Tensor]]:
        """Shuffled batches (this replica's share of each), as the loop takes them
        (`prepare.cache.CachedBatches` reads them from disk)."""
        for idx in batch_indices(len(self), batch_size, generator, replica or LOCAL):
            yield self.take(idx)

    def chunks(self, size: int) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(0, len(self), size):
            yield {k: v[i : i + size] for k, v in self.inputs.items()}

    def for_ridge(self, rows: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return self.inputs, self.y  # Net.linear_state draws its own sample


class Replica:
    """One copy of the training loop among `world` (data-parallel training); alone, plain local training.

    Every replica draws the same seeded batch order and trains on its own share of each batch, so
    the steps, their number and the learning-rate schedule are those of local training. A
    distributed subclass (`train_ray.py`) wraps the model for gradient averaging and makes the
    replicas agree on the numbers that steer the loop.
    """

    rank, world = 0, 1

    @property
    def main(self) -> bool:
        """The replica that writes checkpoints."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training steps run through."""
        return model

    def total(self, value: torch.Tensor) -> float:
        """A sum over this replica's rows, summed over all replicas."""
        return value.item()

    def agree(self, value: float, loss: float) -> tuple[float, float]:
        """The validation scores every replica acts on (the main replica's)."""
        return value, loss


LOCAL = Replica()


def lr_schedule(base: float, total_steps: int, warmup: float) -> Callable[[int], float]:
    """Linear warm-up over the first `warmup` share of steps, then cosine decay to zero."""
    warm = max(1, int(total_steps * warmup))

    def lr_at(step: int) -> float:
        if step < warm:
            return base * (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return base * 0.5 * (1 + math.cos(math.pi * progress))

    return lr_at


def batch_indices(
    rows: int, batch_size: int, generator: torch.Generator, replica: Replica = LOCAL
) -> list[torch.Tensor]:
    """This replica's share of each batch of shuffled row indices. A remainder that would leave a
    replica one row joins the batch before it (batch norm cannot train on one row, and dropping it
    would skip rows every epoch)."""
    batches = list(torch.randperm(rows, generator=generator).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2 * replica.world:
        batches[-2:] = [torch.cat(batches[-2:])]
    return [b[replica.rank :: replica.world] for b in batches]


def train_epoch(
    model: torch.nn.Module,
    head: Head,
    optimizer: torch.optim.Optimizer,
    lr_at: Callable[[int], float],
    data: Batches,
    batch_size: int,
    generator: torch.Generator,
    step: int,
    replica: Replica = LOCAL,
) -> tuple[float, int]:
    """One pass over the shuffled training rows (this replica's share); returns (mean loss, global step)."""
    model.train()
    total = torch.zeros(())
    for inputs, y in data.batches(batch_size, generator, replica):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = head.loss(model(inputs), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total.add_(loss.detach(), alpha=len(y))
        step += 1
    return replica.total(total) / len(data), step


def fit(
    model: torch.nn.Module,
    head: Head,
    train: Batches,
    cfg: Training,
    *,
    score: Callable[[torch.nn.Module], tuple[float, float]] | None,
    better: Callable[[float, float], bool],
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    fingerprint: str = "",
    on_epoch: Callable[[dict[str, Any], TrainState], None] | None = None,
    stop_after: int | None = None,
    start: dict[str, torch.Tensor] | None = None,
    replica: Replica = LOCAL,
    clock: EpochClock | None = None,
) -> TrainState:
    """Train until `cfg.epochs` or early stopping; the model ends with its best weights.

    Without `score` (a refit on train + validation) nothing is held out: every epoch counts as the
    best, and `stop_after` ends training at the epoch the search found best while the learning-rate
    schedule keeps the shape it had over `cfg.epochs`.

    `start` (weights, e.g. `Net.linear_state`) competes with the best epoch as epoch 0 (best_epoch
    -1): scored on validation after training, it is kept when it validates better, and with
    `stop_after` 0. Training itself starts from the model's own weights.

    `replica` places this loop among data-parallel copies; only the main one writes checkpoints.
    `clock` (a wall-clock budget) ends training before an epoch that would overrun it, and may
    plan fewer epochs after the first (the schedule then ends with them).
    """
    stepped = replica.wrap(model)
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = max(1, len(train) // cfg.batch_size + (len(train) % cfg.batch_size > 1))
    lr_at = lr_schedule(cfg.learning_rate, cfg.epochs * steps_per_epoch, cfg.warmup)
    state, best = TrainState(fingerprint=fingerprint), None
    path = checkpoint_dir / CHECKPOINT if checkpoint_dir else None
    if resume:
        state, best = load_checkpoint(path, model, optimizer, fingerprint)
    path = path if replica.main else None
    last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    while state.epoch < last and not _patience_out(state, cfg) and (clock is None or clock.next_fits()):
        epoch = state.epoch
        # dropout, identical on resume; each replica masks its own rows differently
        torch.manual_seed((cfg.seed * 100_003 + epoch) * replica.world + replica.rank)
        generator = torch.Generator().manual_seed(cfg.seed * 100_019 + epoch)  # the same batches on every replica
        loss, state.step = train_epoch(
            stepped, head, optimizer, lr_at, train, cfg.batch_size, generator, state.step, replica
        )
        value, val_loss = replica.agree(*score(model)) if score else (math.nan, math.nan)
        # ties on the metric (common for accuracy on a small validation set) go to the lower loss
        improved = score is None or _improved(value, val_loss, state, better)
        if improved:
            state.best_epoch, state.best_score, state.best_loss, state.bad_epochs = epoch, value, val_loss, 0
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state.bad_epochs += 1
        record = {
            "epoch": epoch + 1,
            "train_loss": round(loss, 6),
            "validation": value,
            "validation_loss": round(val_loss, 6),
            "lr": lr_at(state.step - 1),
            "best": improved,
        }
        state.history.append(record)
        state.epoch = epoch + 1
        if path:
            # every epoch: a kill loses at most one epoch (a save costs ~4 ms, benchmarks/README.md)
            save_checkpoint(path, model, optimizer, state, best)
        if on_epoch:
            on_epoch(record, state)
        # a budget that fits fewer epochs than planned: the schedule ends with them
        if clock is not None and (planned := clock.epoch_done(state.epoch, last)) < last:
            last, lr_at = planned, lr_schedule(cfg.learning_rate, planned * steps_per_epoch, cfg.warmup)
    if start is not None and (score is not None or last == 0):
        # scored after training, which it leaves alone (early stopping follows the epochs only), and
        # recomputed rather than stored, so a resumed run compares exactly what it would have
        model.load_state_dict(start)
        value, val_loss = replica.agree(*score(model)) if score else (math.nan, math.nan)
        if score is None or _improved(value, val_loss, state, better):
            state.best_epoch, state.best_score, state.best_loss, best = -1, value, val_loss, start
    if best is not None:
        model.load_state_dict(best)
    return state


def _improved(value: float, loss: float, state: TrainState, better: Callable[[float, float], bool]) -> bool:
    """Better on the metric; ties (common for accuracy on a small validation set) and an undefined
    metric (ROC AUC on a one-class validation set) go to the lower validation loss."""
    if math.isnan(value) or value == state.best_score:
        return loss < state.best_loss
    return better(value, state.best_score)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on the MLP's weight matrices only: not on biases, norms, embeddings or the skip path."""
    decay, plain = [], []
    for name, param in model.named_parameters():
        hidden = ".body." in name or ".head." in name
        (decay if hidden and param.ndim >= 2 else plain).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, cfg: Training) -> torch.optim.Optimizer:
    """AdamW over `param_groups`; fused (one kernel for all parameters): 8-17% faster epochs on CPU."""
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.learning_rate, fused=True)


def _patience_out(state: TrainState, cfg: Training) -> bool:
    return bool(cfg.early_stopping) and state.bad_epochs >= cfg.early_stopping


SMALL_MODEL = 1_000_000  # parameters


def auto_threads(model: torch.nn.Module) -> int:
    """One thread for small networks, all cores for large ones.

    A small MLP gains ~15% from a second thread on an idle machine but ran 4-10x slower when the
    cores were busy with anything else (OpenMP threads spinning against each other, measured in
    benchmarks/train_overhead.py); large networks have enough work per step to use every core.
    """
    # embedding tables are looked up, not multiplied: a 3.6M-parameter word bag does little work per step
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag)}
    parameters = sum(p.numel() for p in model.parameters() if id(p) not in lookups)
    return 1 if parameters < SMALL_MODEL else max(1, os.cpu_count() or 1)


def seed_everything(seed: int) -> None:
    """Seeds for the model's initial weights and anything numpy draws."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def fit_network(
    prepared: Prepared,
    spec: PipelineSpec | None = None,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    fingerprint: str = "",
    on_epoch: Callable[[dict[str, Any], TrainState], None] | None = None,
    threads: int | None = None,
    refit_epochs: int | None = None,
    init: dict[str, torch.Tensor] | None = None,
    replica: Replica = LOCAL,
    clock: EpochClock | None = None,
) -> tuple[Net, Head, TrainState]:
    """Build the network `spec` describes (the prepared spec by default) and train it.

    Validation scores every epoch and picks the weights kept; for regression on tables a ridge fit
    of the skip path alone competes as epoch 0 (`model.linear_candidate`). With `refit_epochs` the
    network trains on train + validation for that many epochs instead, with nothing held out (0:
    the ridge fit on train + validation). `replica` trains one data-parallel copy (see `fit`).
    """
    from dlpipe import metrics
    from dlpipe.evaluate import predict_outputs, split_targets
    from dlpipe.model import Net

    spec = spec or prepared.spec
    cfg = spec.training
    seed_everything(cfg.seed)
    net = Net(prepared.preprocessor, spec.model)
    if init is not None:  # a warm start: the same preprocessing and architecture, trained on from here
        net.load_state_dict(init)
    torch.set_num_threads(threads or cfg.threads or auto_threads(net))
    head = Head.for_preprocessor(prepared.preprocessor)
    train, validation = (prepared.splits[s].loader(head.target_dtype) for s in ("train", "validation"))
    metric = metrics.get(spec.problem.metric)
    score: Callable[[torch.nn.Module], tuple[float, float]] | None = None
    if refit_epochs is None:
        y_true, decode = split_targets(prepared, "validation")

        def score(model: torch.nn.Module) -> tuple[float, float]:
            logits = torch.from_numpy(predict_outputs(model, head, validation, raw=True))
            loss = float(head.loss(logits.float(), validation.y))
            return round(metric.fn(y_true, decode(head.output(logits).numpy())), 6), loss

    else:
        train = Batches(
            {k: torch.cat([v, validation.inputs[k]]) for k, v in train.inputs.items()},
            torch.cat([train.y, validation.y]),
        )
    start = None
    if head.kind == "regression" and spec.model.linear_candidate:
        from dlpipe.ridge import MAX_ROWS

        start = net.linear_state(*train.for_ridge(MAX_ROWS))
    if refit_epochs == 0 and start is None:  # no epoch was ever best (NaN scores) and no ridge: train as set
        refit_epochs = cfg.epochs
    state = fit(
        net,
        head,
        train,
        cfg,
        score=score,
        better=metric.better,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        fingerprint=fingerprint,
        on_epoch=on_epoch,
        stop_after=refit_epochs,
        start=start,
        replica=replica,
        clock=clock,
    )
    return net, head, state


def write_history(path: Path, records: list[dict[str, Any]], metric: str | None, *, append: bool = False) -> None:
    """Epoch records as JSON lines (history.jsonl), each naming the metric its `validation` holds."""
    from dlpipe.package import strict_json

    with path.open("a" if append else "w") as f:
        for r in records:
            f.write(json.dumps(strict_json({**r, "metric": metric}), allow_nan=False) + "\n")


def train_model(
    prepared: Prepared,
    folder: Path,
    *,
    resume: bool,
    fingerprint: str,
    reporter: Reporter,
    init: dict[str, torch.Tensor] | None = None,
    budget: Budget | None = None,
) -> tuple[Net, Head, TrainState]:
    """Train once, writing history.jsonl and a checkpoint every epoch; within `budget` when it has seconds."""
    from dlpipe.budget import EpochClock

    epochs, metric = prepared.spec.training.epochs, prepared.spec.problem.metric
    history = folder / "history.jsonl"
    history.write_text("")  # a resumed run rewrites the epochs its checkpoint holds, then appends

    def on_epoch(record: dict[str, Any], state: TrainState) -> None:
        write_history(history, state.history if history.stat().st_size == 0 else [record], metric, append=True)
        reporter.epoch(record, epochs)

    if prepared.spec.training.backend == "ray":
        from dlpipe.train_ray import fit_on_ray

        net, head, state = fit_on_ray(
            prepared, folder, resume=resume, fingerprint=fingerprint, on_epoch=on_epoch, init=init
        )
    else:
        net, head, state = fit_network(
            prepared,
            checkpoint_dir=folder,
            resume=resume,
            fingerprint=fingerprint,
            on_epoch=on_epoch,
            init=init,
            clock=EpochClock(budget.deadline, budget) if budget and budget.seconds else None,
        )
    # all of it again: a run killed after its last epoch's checkpoint resumes with no epoch to run,
    # and so no epoch that would have written the history it emptied above
    write_history(history, state.history, metric)
    return net, head, state
