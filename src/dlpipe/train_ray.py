"""Data-parallel training on Ray Train: `training: {backend: ray, workers: N, address: ...}`.

Ray Train's `TorchTrainer` starts N workers (PyTorch DDP underneath, gloo on CPU), each running the
same loop as local training (`train.fit`) as one `Replica`: every worker draws the same seeded batch
order and trains on its share of each batch, DDP averages the gradients, so the steps and the
learning-rate schedule are local training's. The main worker scores validation and the others take
its scores, so early stopping and the kept epoch follow local training's rule.

Every epoch the main worker writes the loop's safetensors checkpoint (never pickle) and reports it to
Ray (kept under `storage`, the run's `ray/` folder by default), and sends the epoch's record and that
checkpoint to this process through a Ray queue: the run folder gets history.jsonl and
checkpoint.safetensors as a local run writes them, so `--resume` works the same way.
"""

from __future__ import annotations

import os
import queue as queues
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dlpipe.checkpoint import TrainState, checkpoint_fingerprint
from dlpipe.rundir import CHECKPOINT, replacing
from dlpipe.train import Replica, fit_network

if TYPE_CHECKING:
    from dlpipe.model import Head, Net
    from dlpipe.prepare import Prepared

DONE = "done"
# Ray Train's controller collects reports when it polls the workers (every 2 s by default), and a
# worker's next report waits for that: 2 s an epoch. 50 ms: 60 ms per report on wine, not 1.6 s.
POLL = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.05"}


class RayReplica(Replica):
    """One Ray Train worker: DDP for the steps, sums and scores exchanged over torch.distributed."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        from ray.train.torch import prepare_model

        return prepare_model(model, move_to_device=False)  # DDP when world > 1

    def total(self, value: torch.Tensor) -> float:
        import torch.distributed as dist

        summed = value.detach().clone().double()
        dist.all_reduce(summed)
        return summed.item()

    def agree(self, value: float, loss: float) -> tuple[float, float]:
        import torch.distributed as dist

        # replicas' batch-norm statistics drift apart a little: every replica steers by the main one's
        scores = torch.tensor([value, loss], dtype=torch.float64)
        dist.broadcast(scores, src=0)
        return scores[0].item(), scores[1].item()


def fit_on_ray(
    prepared: Prepared,
    folder: Path,
    *,
    resume: bool,
    fingerprint: str,
    on_epoch: Callable[[dict[str, Any], TrainState], None],
    init: dict[str, torch.Tensor] | None = None,
) -> tuple[Net, Head, TrainState]:
    """Train on Ray with `training.workers` workers; the run folder gets what local training writes."""
    from dlpipe.cluster import connected, require_ray

    require_ray("training")
    import ray
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    cfg = prepared.spec.training
    checkpoint = folder / CHECKPOINT
    if resume and checkpoint_fingerprint(checkpoint) != fingerprint:
        from dlpipe.errors import ResumeError

        raise ResumeError("no checkpoint of this pipeline to resume from", where=str(checkpoint), fix="start a new run")
    threads = cfg.threads or 1
    storage = cfg.storage or str((folder / "ray").resolve())
    with connected(cfg.address, "training"), _environment(POLL):
        _check_cpus(cfg.workers * threads, cfg.address)
        channel = Queue(actor_options={"num_cpus": 0})
        trainer = TorchTrainer(
            _worker,
            train_loop_config={
                "prepared": ray.put(prepared),
                "init": ray.put(init),
                "resume": checkpoint.read_bytes() if resume else None,
                "fingerprint": fingerprint,
                "threads": threads,
                "channel": channel,
            },
            scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=False, resources_per_worker={"CPU": threads}),
            run_config=RunConfig(
                name=folder.name,  # the same on --resume: Ray finds its own latest checkpoint too
                storage_path=storage,
                checkpoint_config=CheckpointConfig(num_to_keep=1),
            ),
        )
        weights, state = _follow(trainer, channel, checkpoint, on_epoch)
    if cfg.storage is None:  # the run folder keeps its own checkpoint until the run ends, as locally
        shutil.rmtree(storage, ignore_errors=True)
    from safetensors.torch import load

    from dlpipe.model import Head, Net

    net = Net(prepared.preprocessor, prepared.spec.model)
    net.load_state_dict(load(weights))
    return net, Head.for_preprocessor(prepared.preprocessor), TrainState(**state)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Settings Ray Train hands from this process to its controller and workers; a user's own win."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _check_cpus(needed: int, address: str | None) -> None:
    """A local Ray never grows: asking it for more CPUs than it has would wait forever."""
    import ray

    have = int(ray.cluster_resources().get("CPU", 0))
    if address is None and needed > have:
        from dlpipe.errors import ConfigError

        raise ConfigError(
            f"{needed} CPUs asked of a local Ray with {have} (one per worker, times training.threads)",
            where="training.workers",
            fix=f"use at most {have} workers, or join a cluster with training.address",
        )


def _follow(
    trainer: Any, channel: Any, checkpoint: Path, on_epoch: Callable[[dict[str, Any], TrainState], None]
) -> tuple[bytes, dict[str, Any]]:
    """Run the trainer in a thread while this one writes each epoch the main worker sends."""
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=fit, name="ray-train", daemon=True)
    runner.start()
    done = None
    try:
        while done is None and (runner.is_alive() or not channel.empty()):
            try:
                record, state, payload = channel.get(timeout=0.5)
            except queues.Empty:
                continue
            if record == DONE:
                done = payload, state
                continue
            with replacing(checkpoint) as tmp:  # atomic, as local training's save
                tmp.write_bytes(payload)
            on_epoch(record, TrainState(**state))
    except BaseException:
        # interrupted here (Ctrl-C, a full disk): without its queue the main worker fails, which ends
        # the Ray run; the run folder keeps the last checkpoint written for --resume
        channel.shutdown(force=True)
        runner.join()
        raise
    runner.join()
    if failure:
        raise _user_error(failure[0]) from None
    if done is None:
        raise RuntimeError("Ray Train finished without sending the trained weights")
    return done


def _user_error(exc: BaseException) -> BaseException:
    """A worker's dlpipe error (bad data, a bad resume) as itself; anything else as Ray raised it."""
    from dlpipe.errors import DlpipeError

    for failure in getattr(exc, "worker_failures", {}).values():
        cause = failure
        while cause is not None and not isinstance(cause, DlpipeError):
            cause = cause.__cause__
        if cause is not None:
            return cause
    return exc


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the local loop as one replica; the main one reports each epoch."""
    import ray
    import ray.train
    from safetensors.torch import save

    context = ray.train.get_context()
    replica = RayReplica(context.get_world_rank(), context.get_world_size())
    channel = config["channel"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        resume = _restore(folder, config["resume"])

        def report(record: dict[str, Any], state: TrainState) -> None:
            if not replica.main:
                ray.train.report(record)  # a barrier: every worker reports every epoch
                return
            channel.put((record, vars(state), (folder / CHECKPOINT).read_bytes()))
            ray.train.report(
                record,
                checkpoint=ray.train.Checkpoint.from_directory(tmp),
                delete_local_checkpoint_after_upload=False,  # the loop rewrites it next epoch
            )

        net, _, state = fit_network(
            ray.get(config["prepared"]),
            checkpoint_dir=folder,
            resume=resume,
            fingerprint=config["fingerprint"],
            on_epoch=report,
            threads=config["threads"],
            init=ray.get(config["init"]),
            replica=replica,
        )
    if replica.main:
        channel.put((DONE, vars(state), save(net.state_dict())))


def _restore(folder: Path, resume: bytes | None) -> bool:
    """Place the checkpoint to start from in `folder`: Ray's latest of this run (a worker group Ray
    restarted, or `--resume`), else the run folder's; False when training starts afresh."""
    import ray.train

    latest = ray.train.get_checkpoint()
    if latest is not None:
        with latest.as_directory() as saved:
            shutil.copyfile(Path(saved) / CHECKPOINT, folder / CHECKPOINT)
        return True
    if resume is not None:
        (folder / CHECKPOINT).write_bytes(resume)
        return True
    return False
