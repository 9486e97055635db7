"""The server's background writer: a request hands its rows over and returns at once; one thread
writes them to the store in batches.

Nothing vanishes silently. Rows wait in a bounded buffer (`queue_rows`); past it they are refused
and counted lost (`queue_full`). A row the database refuses for good (an id sent again) is left
out and counted (`rejected`) so it cannot hold up the rows behind it. While the store is
unreachable or locked the writer keeps its batch and retries with back-off, so rows resume when
the store returns; what is still buffered when the server stops after `flush_seconds` is counted
lost (`shutdown`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dlpipe.monitor.embeddings import EMBEDDED, as_stored
from dlpipe.monitor.store import Store

BATCH_ROWS = 1000  # rows per insert
LINGER_SECONDS = 0.1  # how long the writer waits for more rows before an insert


@dataclass
class Entry:
    """One request's rows as the server saw them."""

    ids: list[str]
    frame: pd.DataFrame
    predictions: np.ndarray
    probabilities: np.ndarray | None
    time: float
    latency_ms: float
    version: str | None = None  # the model version that answered (a server may swap versions)
    shadow: bool = False  # a shadow model's answer to the same rows: stored beside, never returned
    embed: Callable[[pd.DataFrame], dict[str, np.ndarray]] | None = None  # the answering model's encoders
    types: dict[str, str] | None = None  # the answering model's feature types (a swap may change them)


@dataclass
class Counters:
    """Hooks the server's metrics attach to: rows stored, rows lost (by reason), store errors."""

    stored: Callable[[int], None] = lambda n: None
    lost: Callable[[str, int], None] = lambda reason, n: None
    errors: Callable[[], None] = lambda: None
    totals: dict[str, int] = field(default_factory=lambda: {"stored": 0, "queue_full": 0, "shutdown": 0, "rejected": 0})


class Recorder:
    def __init__(
        self,
        url: str,
        model: str,
        version: str,
        types: dict[str, str],
        *,
        queue_rows: int = 100_000,
        raw_media: bool = False,
        max_text_chars: int = 2000,
        counters: Counters | None = None,
        flush_seconds: float = 10.0,
        embed: Callable[[pd.DataFrame], dict[str, np.ndarray]] | None = None,
    ) -> None:
        self.url, self.model, self.version, self.types = url, model, version, types
        self.queue_rows, self.raw_media, self.max_text_chars = queue_rows, raw_media, max_text_chars
        self.counters = counters or Counters()
        self.flush_seconds = flush_seconds
        # the encoders' outputs of text, image and audio columns, stored for drift (in this thread)
        self.embed = embed if any(t in EMBEDDED for t in types.values()) else None
        self.buffer: deque[Entry] = deque()
        self.buffered = 0  # rows in the buffer
        self.cond = threading.Condition()
        self.stopping = False
        self.abandoned = False
        self.thread: threading.Thread | None = None
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self.last_error: str | None = None

    def store(self) -> Store:
        """The store, opened on first use (a bad URL is reported then, not at import)."""
        with self._store_lock:
            if self._store is None:
                self._store = Store(self.url)
            return self._store

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="dlpipe-monitor-writer", daemon=True)
        self.thread.start()

    def record(self, entry: Entry) -> None:
        """Queue a request's rows; never blocks. Rows past the buffer's bound are counted lost."""
        rows = len(entry.ids)
        with self.cond:
            if self.stopping or self.buffered + rows > self.queue_rows:
                self._lost("queue_full" if not self.stopping else "shutdown", rows)
                return
            self.buffer.append(entry)
            self.buffered += rows
            self.cond.notify()

    @property
    def pending(self) -> int:
        return self.buffered

    def stop(self) -> None:
        """Write what is buffered (for at most `flush_seconds`), then stop; the rest is counted lost."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        if self.thread is not None:
            self.thread.join(self.flush_seconds + 5)
        with self.cond:
            self.abandoned = True  # a writer still inside a slow insert must not count these rows again
            if self.buffered:
                self._lost("shutdown", self.buffered)
                self.buffer.clear()
                self.buffered = 0
        if self._store is not None:
            self._store.dispose()

    def _lost(self, reason: str, rows: int) -> None:
        self.counters.totals[reason] = self.counters.totals.get(reason, 0) + rows
        self.counters.lost(reason, rows)

    def _take(self) -> list[Entry]:
        """Entries of up to BATCH_ROWS rows (at least one entry), left in the buffer until written."""
        taken, rows = [], 0
        for entry in self.buffer:
            if taken and rows + len(entry.ids) > BATCH_ROWS:
                break
            taken.append(entry)
            rows += len(entry.ids)
        return taken

    def _run(self) -> None:
        deadline: float | None = None
        while True:
            with self.cond:
                while not self.buffer and not self.stopping:
                    self.cond.wait()
                # gather rows for a moment: one insert per request cost a request ~1 ms at concurrency 1
                linger = time.monotonic() + LINGER_SECONDS
                while self.buffered < BATCH_ROWS and not self.stopping and (left := linger - time.monotonic()) > 0:
                    self.cond.wait(left)
                if self.stopping and deadline is None:
                    deadline = time.monotonic() + self.flush_seconds
                if not self.buffer or (deadline is not None and time.monotonic() > deadline):
                    return
                batch = self._take()
            rows, rejected = self._serialise(batch)
            delay = 0.05
            while True:
                try:
                    rejected += self._insert(rows)
                    break
                except Exception as exc:  # unreachable or locked: keep the rows and retry
                    self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    self.counters.errors()
                    with self.cond:
                        if self.stopping:
                            deadline = deadline or time.monotonic() + self.flush_seconds
                            if time.monotonic() > deadline:
                                return  # stop() counts what is still buffered as lost
                        self.cond.wait(delay)
                    delay = min(delay * 2, 2.0)
            self.last_error = None
            total = sum(len(e.ids) for e in batch)
            with self.cond:
                if self.abandoned:  # stop() gave up waiting and counted these rows lost already
                    return
                for _ in batch:
                    self.buffer.popleft()
                self.buffered -= total
            if rejected:
                self._lost("rejected", rejected)
            self.counters.totals["stored"] += total - rejected
            self.counters.stored(total - rejected)

    def _serialise(self, batch: list[Entry]) -> tuple[list[dict[str, Any]], int]:
        """The store's rows of a batch, and how many rows could not be made into one (counted, not retried)."""
        rows, rejected = [], 0
        for entry, vectors in zip(batch, self._embeddings(batch), strict=True):
            try:
                rows.extend(self.rows(entry, vectors))
            except (TypeError, ValueError):  # a value JSON cannot hold
                rejected += len(entry.ids)
        return rows, rejected

    def _insert(self, rows: list[dict[str, Any]]) -> int:
        """Insert the rows; a row the database refuses (a repeated id, a value too long) is left out
        and counted, so it cannot hold up the rows behind it. Returns how many were refused."""
        import sqlalchemy as sa

        refused = (sa.exc.IntegrityError, sa.exc.DataError)
        try:
            self.store().add_predictions(rows)
            return 0
        except refused:
            pass
        rejected = 0
        for row in rows:
            try:
                self.store().add_predictions([row])
            except refused:
                rejected += 1
        return rejected

    def _embeddings(self, batch: list[Entry]) -> list[dict[str, np.ndarray]]:
        """Each entry's embeddings, one encoder call per model over the batch; none when that fails."""
        out: list[dict[str, np.ndarray]] = [{} for _ in batch]
        groups: dict[Any, list[int]] = {}
        for i, entry in enumerate(batch):
            types = entry.types or self.types
            embed = entry.embed or self.embed
            if embed is not None and any(t in EMBEDDED for t in types.values()):
                groups.setdefault(embed, []).append(i)
        for embed, members in groups.items():
            frames = [batch[i].frame for i in members]
            try:
                vectors = embed(pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0])
            except Exception:  # the rows are still worth storing; drift then skips them
                continue
            start = 0
            for i in members:
                end = start + len(batch[i].ids)
                out[i] = {name: v[start:end] for name, v in vectors.items()}
                start = end
        return out

    def rows(self, entry: Entry, vectors: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
        """The store's rows for one request: inputs as JSON, media and long texts as a hash, with the
        encoders' outputs (`vectors`) for text, image and audio columns."""
        columns = {name: entry.frame[name].tolist() for name in entry.frame.columns}
        vectors = vectors or {}
        types = entry.types or self.types
        out = []
        for i, row_id in enumerate(entry.ids):
            inputs = {name: self._value(values[i], types.get(name, "")) for name, values in columns.items()}
            for name, matrix in vectors.items():
                if inputs.get(name) is not None:
                    kept = inputs[name] if isinstance(inputs[name], dict) else {"text": inputs[name]}
                    inputs[name] = {**kept, "embedding": as_stored(matrix[i])}
            probabilities = None
            if entry.probabilities is not None:
                probabilities = json.dumps([_plain(round(float(p), 6)) for p in entry.probabilities[i]])
            out.append(
                {
                    "id": f"{row_id}~shadow-{entry.version}" if entry.shadow else row_id,
                    "shadow_of": row_id if entry.shadow else None,
                    "time": entry.time,
                    "model": self.model,
                    "version": entry.version or self.version,
                    "inputs": json.dumps(inputs, allow_nan=False),
                    "prediction": json.dumps(_plain(entry.predictions[i])),
                    "probabilities": probabilities,
                    "latency_ms": entry.latency_ms,
                }
            )
        return out

    def _value(self, value: Any, kind: str) -> Any:
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            if self.raw_media:
                import base64

                return {"base64": base64.b64encode(data).decode()}
            return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        if kind == "text" and isinstance(value, str) and len(value) > self.max_text_chars and not self.raw_media:
            return {"sha256": hashlib.sha256(value.encode()).hexdigest(), "chars": len(value)}
        return _plain(value)


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy numbers as Python ones, NaN and NA as None, times as ISO text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
