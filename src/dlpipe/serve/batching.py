"""One batcher per model: when the model is free it takes what is queued, up to `max_batch_size`
rows (rows, not requests), waiting at most `max_delay_ms` for more; one thread runs the model.

A full queue is refused at once (503 with Retry-After) rather than growing without bound. When a
batch fails on a row a request sent (an unreadable image), each request of the batch runs again
on its own, so only the request with the bad row fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dlpipe.serve.inputs import RequestError
from dlpipe.serve.runtime import Prediction


@dataclass
class _Job:
    frame: pd.DataFrame
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """What the metrics report: batch sizes in rows, seconds spent queued."""

    on_batch: Callable[[int], None] | None = None
    on_queued: Callable[[float], None] | None = None


class Batcher:
    def __init__(
        self,
        predict: Callable[[pd.DataFrame], Prediction],
        *,
        max_batch_size: int = 32,
        max_delay_ms: float = 0.0,
        max_queue: int = 256,
        stats: BatchStats | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000
        self.max_queue = max_queue
        self.stats = stats or BatchStats()
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="dlpipe-model")
        self.task: asyncio.Task | None = None
        self.held: _Job | None = None  # a job taken that did not fit the last batch
        self.stopped = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        self.stopped = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.worker.shutdown(wait=True)
        while not self.queue.empty():  # nothing waits forever on a stopped batcher
            _settle(self.queue.get_nowait(), exc=RequestError("the model is being replaced; retry", status=503))

    async def run(self, work: Callable[[], Any]) -> Any:
        """Anything else that must run on the model's thread (the warm-up)."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, work)

    @property
    def pending(self) -> int:
        return self.queue.qsize() + (self.held is not None)

    async def submit(self, frame: pd.DataFrame) -> Prediction:
        """The prediction for one request's rows, batched with whatever else is waiting."""
        if self.stopped:
            raise RequestError("the model is being replaced; retry", status=503)
        if self.pending >= self.max_queue:
            raise RequestError(f"the server is busy ({self.pending} requests queued); retry shortly", status=503)
        job = _Job(frame, asyncio.get_running_loop().create_future())
        self.queue.put_nowait(job)
        return await job.future

    async def _loop(self) -> None:
        while True:
            first = self.held or await self.queue.get()
            self.held = None
            jobs, rows = [first], len(first.frame)
            deadline = time.perf_counter() + self.max_delay
            while rows < self.max_batch_size:
                try:
                    job = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    wait = deadline - time.perf_counter()
                    if wait <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self.queue.get(), wait)
                    except TimeoutError:
                        break
                if rows + len(job.frame) > self.max_batch_size:
                    self.held = job  # first in the next batch
                    break
                jobs.append(job)
                rows += len(job.frame)
            jobs = [j for j in jobs if not j.future.done()]  # a client that went away
            if jobs:
                await self._run(jobs)

    async def _run(self, jobs: list[_Job]) -> None:
        now = time.perf_counter()
        for job in jobs:
            if self.stats.on_queued:
                self.stats.on_queued(now - job.queued)
        if self.stats.on_batch:
            self.stats.on_batch(sum(len(j.frame) for j in jobs))
        loop = asyncio.get_running_loop()
        frame = pd.concat([j.frame for j in jobs], ignore_index=True) if len(jobs) > 1 else jobs[0].frame
        try:
            result = await loop.run_in_executor(self.worker, self.predict, frame)
        except Exception as exc:
            if len(jobs) == 1:
                _settle(jobs[0], exc=exc)
                return
            for job in jobs:  # find the request at fault: each runs alone
                try:
                    _settle(job, await loop.run_in_executor(self.worker, self.predict, job.frame))
                except Exception as alone:
                    _settle(job, exc=alone)
            return
        start = 0
        for job in jobs:
            end = start + len(job.frame)
            _settle(job, _slice(result, start, end))
            start = end


def _slice(result: Prediction, start: int, end: int) -> Prediction:
    probabilities = None if result.probabilities is None else result.probabilities[start:end]
    return Prediction(np.asarray(result.predictions[start:end]), probabilities)


def _settle(job: _Job, result: Prediction | None = None, exc: BaseException | None = None) -> None:
    if job.future.done():
        return
    if exc is not None:
        job.future.set_exception(exc)
    else:
        job.future.set_result(result)
