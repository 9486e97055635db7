"""The prediction store: every prediction the server made, and the feedback labels that arrive
later, in any database SQLAlchemy reaches (SQLite in WAL mode by default, PostgreSQL).

Two tables. `predictions`: id, time (Unix seconds), model, version, inputs (JSON object of feature
to value), prediction (JSON), probabilities (JSON list in the model's class order), latency_ms,
and for a shadow model's row the id of the served answer it mirrors (`shadow_of`).
`feedback`: id, label (JSON), time; the newest label for an id wins. They join on id, so a label
may arrive days after its prediction, or before the writer has stored it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

import pandas as pd
import sqlalchemy as sa

from dlpipe.errors import DataError
from dlpipe.redact import shown_url

METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "dlpipe_predictions",
    METADATA,
    sa.Column("id", sa.String(256), primary_key=True),  # a client's id (<= 128) or a shadow row's longer one
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("prediction", sa.Text, nullable=False),
    sa.Column("probabilities", sa.Text),
    sa.Column("latency_ms", sa.Float),
    sa.Column("shadow_of", sa.String(128)),  # a shadow model's row: the id of the answer it mirrors
    sa.Index("dlpipe_predictions_model_time", "model", "time"),
)
FEEDBACK = sa.Table(
    "dlpipe_feedback",
    METADATA,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("time", sa.Float, nullable=False),
)
MAX_ID = 128


class Store:
    """One database; tables are created on first use. Safe to share between threads."""

    def __init__(self, url: str) -> None:
        from dlpipe.spec.monitoring import expand

        url = expand(url, "monitoring.store") or ""
        try:
            parsed = sa.engine.make_url(url)
        except Exception as exc:
            raise DataError(f"not a valid database URL: {exc}", where="monitoring.store") from None
        parsed = _with_installed_driver(parsed)
        self.url = shown_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        try:
            self.engine = sa.create_engine(parsed, pool_pre_ping=not self.sqlite)
        except Exception as exc:  # a missing driver, say
            raise DataError(
                f"cannot use this database: {exc}",
                where=self.url,
                fix="a SQLAlchemy URL such as sqlite:///dlpipe-monitor.db or postgresql://user@host/db",
            ) from None
        if self.sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Create the tables if they are missing (once per Store)."""
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                try:
                    METADATA.create_all(self.engine)
                except sa.exc.DBAPIError:
                    # another process created them between the check and the CREATE: fine if they are there
                    inspector = sa.inspect(self.engine)
                    if not all(inspector.has_table(t.name) for t in METADATA.sorted_tables):
                        raise
                self._ready = True

    def add_predictions(self, rows: list[dict[str, Any]]) -> None:
        """Insert rows (dicts with the predictions table's columns) in one transaction."""
        self.ensure()
        with self.engine.begin() as conn:
            conn.execute(PREDICTIONS.insert(), rows)

    def add_feedback(self, labels: Iterable[tuple[str, Any]], now: float) -> int:
        """Store (id, label) pairs; a label sent again for an id replaces the earlier one."""
        rows = [{"id": i, "label": json.dumps(label), "time": now} for i, label in labels]
        if not rows:
            return 0
        self.ensure()
        insert = _upsert(self.engine.dialect.name)
        with self.engine.begin() as conn:
            for start in range(0, len(rows), 5000):
                conn.execute(insert, rows[start : start + 5000])
        return len(rows)

    def predictions(
        self,
        model: str,
        since: float | None = None,
        until: float | None = None,
        latest: int | None = None,
        version: str | None = None,
        shadow: bool = False,
    ) -> pd.DataFrame:
        """The model's predictions in time order (only the `latest` rows, if given), with their feedback
        label (None when there is none)."""
        self.ensure()
        p, f = PREDICTIONS, FEEDBACK
        # a shadow row takes the label of the answer it mirrors
        joined = p.outerjoin(f, sa.func.coalesce(p.c.shadow_of, p.c.id) == f.c.id)
        query = sa.select(p, f.c.label.label("label")).select_from(joined)
        query = query.where(p.c.model == model)
        # the served answers, or (`shadow`) only a shadow model's: never both, or a request counts twice
        query = query.where(p.c.shadow_of.is_not(None) if shadow else p.c.shadow_of.is_(None))
        if version is not None:
            query = query.where(p.c.version == version)
        if since is not None:
            query = query.where(p.c.time >= since)
        if until is not None:
            query = query.where(p.c.time < until)
        if latest is not None:  # newest first up to the limit (the time index), then back in time order
            query = query.order_by(p.c.time.desc(), p.c.id.desc()).limit(latest)
        else:
            query = query.order_by(p.c.time, p.c.id)
        with self.engine.connect() as conn:
            frame = pd.read_sql_query(query, conn)
        return frame.iloc[::-1].reset_index(drop=True) if latest is not None else frame

    def feedback_count(self) -> int:
        """Labels stored so far (every id counts once)."""
        self.ensure()
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(FEEDBACK)).scalar_one())

    def count(self, model: str | None = None) -> int:
        self.ensure()
        query = sa.select(sa.func.count()).select_from(PREDICTIONS)
        if model is not None:
            query = query.where(PREDICTIONS.c.model == model)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def failed(self, exc: Exception, doing: str) -> DataError:
        """A database's failure as one line naming the (masked) store."""
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return DataError(f"cannot {doing} the prediction store: {first}", where=self.url)


def _with_installed_driver(url: sa.engine.URL) -> sa.engine.URL:
    """`postgresql://` means psycopg2 to SQLAlchemy; use psycopg 3 when only that one is installed."""
    if url.drivername != "postgresql":
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    # WAL: readers (dlpipe monitor) never block the server's writer; busy_timeout: a second writer
    # (feedback) waits instead of failing; NORMAL sync is durable across application crashes in WAL
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _upsert(dialect: str) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    if dialect in ("sqlite", "postgresql"):
        module = sqlite if dialect == "sqlite" else postgresql
        insert = module.insert(FEEDBACK)
        return insert.on_conflict_do_update(
            index_elements=[FEEDBACK.c.id], set_={"label": insert.excluded.label, "time": insert.excluded.time}
        )
    raise DataError(f"feedback needs SQLite or PostgreSQL; the store is {dialect}", where="monitoring.store")
