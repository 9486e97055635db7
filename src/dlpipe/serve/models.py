"""The models a server holds: the one it serves (which a registry alias may move) and any version a
client names. Each is a `Slot`: a loaded runtime with its own batcher.

A swap loads and warms the new version beside the old one, switches in one assignment, and retires
the old slot only when the requests it took have been answered: no request fails during a swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from dlpipe.serve.batching import Batcher, BatchStats
from dlpipe.serve.inputs import Feature, RequestError, schema
from dlpipe.serve.runtime import Runtime

MAX_EXTRA_VERSIONS = 2  # versions loaded because a client named them, besides the one served; never evicted


@dataclass
class Slot:
    runtime: Runtime
    batcher: Batcher
    features: list[Feature]
    inflight: int = 0

    @functools.cached_property
    def types(self) -> dict[str, str]:
        return {f.name: f.type for f in self.features}

    @property
    def version(self) -> str:
        return self.runtime.version


@dataclass
class SlotSettings:
    runtime: str = "auto"
    threads: int | None = None
    max_batch_size: int = 32
    max_delay_ms: float = 0.0
    max_queue: int = 256
    stats: BatchStats | None = None


class ModelSet:
    """The served slot, the source it follows (a folder or a `models:/` reference), extra versions."""

    def __init__(
        self, runtime: Runtime, source: str | Path | None, settings: SlotSettings, shadow: str | None = None
    ) -> None:
        self.settings = settings
        self.source = str(source) if source is not None else None
        self.current = self._slot(runtime)
        self.shadow_source = shadow  # a model that answers the same rows for the log, never the client
        self.shadow: Slot | None = None
        self.shadow_error: str | None = None
        self.tasks: set[asyncio.Task] = set()
        self.extra: dict[str, Slot] = {}
        self.lock = asyncio.Lock()
        self.on_swap: list[Callable[[Slot, Slot], None]] = []
        self.watcher: asyncio.Task | None = None

    def _slot(self, runtime: Runtime) -> Slot:
        s = self.settings
        batcher = Batcher(
            runtime.predict,
            max_batch_size=s.max_batch_size,
            max_delay_ms=s.max_delay_ms,
            max_queue=s.max_queue,
            stats=s.stats,
        )
        return Slot(runtime, batcher, schema(runtime.model.preprocessor))

    async def _load(self, folder: str | Path) -> Slot:
        runtime = await run_in_threadpool(Runtime, folder, self.settings.runtime, self.settings.threads)
        slot = self._slot(runtime)
        slot.batcher.start()
        await slot.batcher.run(runtime.warm_up)
        return slot

    async def start(self, poll_seconds: float | None = None) -> None:
        self.current.batcher.start()
        await self.current.batcher.run(self.current.runtime.warm_up)
        if self.shadow_source is not None:
            self.shadow = await self._load(await run_in_threadpool(_folder, self.shadow_source))
        if poll_seconds and (self.follows_registry or self.shadow_source):
            self.watcher = asyncio.get_running_loop().create_task(self._watch(poll_seconds))

    async def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watcher
        if self.tasks:  # slots being retired: their requests finish first
            await asyncio.wait(list(self.tasks), timeout=30)
        for slot in [self.current, *self.extra.values(), *([self.shadow] if self.shadow else [])]:
            await slot.batcher.stop()

    @property
    def follows_registry(self) -> bool:
        return self.source is not None and self.source.startswith("models:/")

    def resolve(self) -> Path:
        return _folder(self.source)

    async def refresh(self) -> bool:
        """Load the version the source names now, if it is not the one served; True when it swapped.
        The shadow model follows its own reference the same way; its problems never stop the served one."""
        if self.shadow_source is not None and self.shadow is not None:
            try:
                folder = await run_in_threadpool(_folder, self.shadow_source)
                if folder.resolve() != self.shadow.runtime.model.folder.resolve():
                    old_shadow, self.shadow = self.shadow, await self._load(folder)
                    self._later(self._retire(old_shadow))
            except Exception as exc:  # the shadow's alias gone or its folder unreadable: keep the old one
                self.shadow_error = str(exc)
        if not self.follows_registry:
            return False
        async with self.lock:
            folder = await run_in_threadpool(self.resolve)
            if folder.resolve() == self.current.runtime.model.folder.resolve():
                return False
            new = await self._load(folder)
            old, self.current = self.current, new
            for hook in self.on_swap:
                hook(old, new)
            self._later(self._retire(old))
            return True

    def _later(self, work: Any) -> None:
        """Background work the set keeps a reference to (and waits for on stop)."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _watch(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):  # a registry being written or gone: try again later
                await self.refresh()

    async def _retire(self, slot: Slot) -> None:
        """Stop a replaced slot once nothing it took is still waiting for an answer."""
        while slot.inflight or slot.batcher.pending:
            await asyncio.sleep(0.05)
        await slot.batcher.stop()

    async def version(self, name: str, version: str) -> Slot:
        """The slot of a given version: the served one, an extra one, or (from the registry) loaded now."""
        if version == self.current.version:
            return self.current
        if version in self.extra:
            return self.extra[version]
        if not self.follows_registry or not version.isdigit():
            raise RequestError(f"model {name!r} has no version {version!r} (it has {self.current.version!r})", 404)
        from dlpipe.registry import Registry, registry_root

        try:
            folder = await run_in_threadpool(lambda: Registry(registry_root()).get(name, int(version)).folder)
        except Exception:
            raise RequestError(f"model {name!r} has no version {version!r} in the registry", 404) from None
        async with self.lock:
            if version not in self.extra:
                # a bound, not a cache: evicting would let any client make the server load models in turn
                if len(self.extra) >= MAX_EXTRA_VERSIONS:
                    held = ", ".join([self.current.version, *self.extra])
                    raise RequestError(f"this server holds versions {held}; restart it to serve version {version}", 409)
                self.extra[version] = await self._load(folder)
        return self.extra[version]


async def call(slot: Slot, frame: Any) -> Any:
    """One request's rows through a slot's batcher (hold the slot with `holding` from when it is chosen)."""
    return await slot.batcher.submit(frame)


@contextlib.contextmanager
def holding(slot: Slot):
    """Count a request on its slot from the moment it is chosen, so a swap does not retire the slot
    while the request is still reading or parsing its body."""
    slot.inflight += 1
    try:
        yield slot
    finally:
        slot.inflight -= 1


def _folder(source: str | Path) -> Path:
    from dlpipe.manifest import find_model_folder

    return find_model_folder(source)
