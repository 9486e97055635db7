"""The prediction store and its background writer, on real SQLite files."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd
import pytest

from dlpipe.monitor.recorder import Entry, Recorder
from dlpipe.monitor.store import Store


def _entry(n: int, start: int = 0, frame: pd.DataFrame | None = None) -> Entry:
    frame = frame if frame is not None else pd.DataFrame({"x": np.arange(start, start + n, dtype=float)})
    return Entry(
        ids=[f"r{start + i}" for i in range(n)],
        frame=frame,
        predictions=np.array(["a"] * n, dtype=object),
        probabilities=np.tile([0.25, 0.75], (n, 1)),
        time=time.time(),
        latency_ms=1.5,
    )


def _wait(predicate, seconds: float = 20) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def test_rows_round_trip_with_feedback_joined_on_id(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    recorder = Recorder(url, "m", "1", {"x": "numeric"})
    recorder.start()
    recorder.record(_entry(3))
    recorder.stop()
    store = Store(url)
    store.add_feedback([("r1", "b"), ("nope", "a")], now=time.time())
    store.add_feedback([("r1", "a")], now=time.time())  # the newer label wins
    rows = store.predictions("m")
    assert rows["id"].tolist() == ["r0", "r1", "r2"]
    assert [json.loads(v) for v in rows["inputs"]] == [{"x": 0.0}, {"x": 1.0}, {"x": 2.0}]
    assert json.loads(rows["probabilities"][0]) == [0.25, 0.75]
    assert rows["label"].isna().tolist() == [True, False, True] and rows["label"][1] == '"a"'
    assert store.predictions("other").empty
    assert recorder.counters.totals == {"stored": 3, "queue_full": 0, "shutdown": 0, "rejected": 0}
    mode = store.engine.connect().exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"


def test_a_full_buffer_counts_what_it_refuses(tmp_path):
    recorder = Recorder(f"sqlite:///{tmp_path / 'm.db'}", "m", "1", {"x": "numeric"}, queue_rows=5)
    # not started: nothing drains, so the third request no longer fits
    recorder.record(_entry(2, 0))
    recorder.record(_entry(3, 2))
    recorder.record(_entry(1, 5))
    assert recorder.counters.totals["queue_full"] == 1 and recorder.pending == 5
    recorder.start()
    recorder.stop()
    assert Store(recorder.url).count("m") == 5
    assert recorder.counters.totals["stored"] == 5


def test_rows_wait_while_the_store_is_unreachable_and_resume(tmp_path):
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder / 'm.db'}"
    errors = []
    recorder = Recorder(url, "m", "1", {"x": "numeric"})
    recorder.counters.errors = lambda: errors.append(1)
    recorder.start()
    recorder.record(_entry(4))
    _wait(lambda: len(errors) >= 2)  # the folder is missing: SQLite cannot open the file
    assert recorder.pending == 4 and recorder.last_error
    folder.mkdir()
    _wait(lambda: recorder.pending == 0)
    recorder.stop()
    assert Store(url).count("m") == 4 and recorder.counters.totals["shutdown"] == 0


def test_what_cannot_be_written_by_shutdown_is_counted_lost(tmp_path):
    recorder = Recorder(f"sqlite:///{tmp_path / 'missing' / 'm.db'}", "m", "1", {}, flush_seconds=0.3)
    recorder.start()
    recorder.record(_entry(7))
    recorder.stop()
    assert recorder.counters.totals["shutdown"] == 7 and recorder.pending == 0


def test_media_and_long_texts_are_stored_as_hashes(tmp_path):
    frame = pd.DataFrame({"photo": [b"\x89PNG fake"], "note": ["word " * 1000], "short": ["hello"]})
    types = {"photo": "image", "note": "text", "short": "text"}
    recorder = Recorder(f"sqlite:///{tmp_path / 'm.db'}", "m", "1", types)
    row = recorder.rows(_entry(1, frame=frame))[0]
    inputs = json.loads(row["inputs"])
    assert inputs["photo"] == {"sha256": hashlib.sha256(b"\x89PNG fake").hexdigest(), "bytes": 9}
    assert set(inputs["note"]) == {"sha256", "chars"} and inputs["short"] == "hello"
    raw = Recorder(recorder.url, "m", "1", types, raw_media=True).rows(_entry(1, frame=frame))[0]
    assert json.loads(raw["inputs"])["note"].startswith("word word")


def test_a_row_the_database_refuses_is_counted_and_holds_nothing_up(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    recorder = Recorder(url, "m", "1", {"x": "numeric"})
    recorder.start()
    recorder.record(_entry(2, 0))
    recorder.record(_entry(2, 0))  # a client retried with the same ids
    odd = _entry(1, 10)
    odd.probabilities = np.array([[np.nan, 1.0]])  # stored as null: strict JSON
    recorder.record(odd)
    recorder.record(_entry(3, 20))
    recorder.stop()
    assert Store(url).count("m") == 6
    assert recorder.counters.totals == {"stored": 6, "queue_full": 0, "shutdown": 0, "rejected": 2}
    stored = Store(url).predictions("m").set_index("id")
    assert json.loads(stored.loc["r10", "probabilities"]) == [None, 1.0]


def test_secrets_stay_out_of_messages(monkeypatch, tmp_path):
    from dlpipe.errors import ConfigError
    from dlpipe.monitor.notify import send_webhook
    from dlpipe.redact import shown_url as shown
    from dlpipe.spec import Monitoring

    assert shown("postgresql://app:pw@db/m?password=S3cret&sslmode=require") == (
        "postgresql://app:***@db/m?password=***&sslmode=require"
    )
    monkeypatch.setenv("MONITOR_DB", str(tmp_path / "m.db"))
    store = Store("sqlite:///${MONITOR_DB}")  # a file's path (or a password) from the environment
    assert store.count() == 0 and (tmp_path / "m.db").exists()
    with pytest.raises(ConfigError, match="environment variable NOPE is not set"):
        Store("postgresql://app:${NOPE}@db/m")
    report = {"model": "m", "version": "1", "alerts": [{"kind": "k", "message": "x"}], "rows": 1}
    for url in ("hooks.example/SECRET", "http://x y/SECRET", "http://127.0.0.1:9/SECRET"):
        problem = send_webhook(url, report, timeout=2)
        assert problem and "SECRET" not in problem
    with pytest.raises(ValueError, match="http:// or https://"):
        Monitoring(webhook="ftp://example/x")
