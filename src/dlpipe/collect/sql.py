"""SQL sources through SQLAlchemy: any database with a URL (tested on SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dlpipe.collect import Collected
from dlpipe.errors import DataError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


def read_sql(source) -> Collected:
    """Run the query and return its rows; errors name the (password-masked) URL."""
    import pandas as pd
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(source.url)
    except Exception as exc:
        raise DataError(f"not a valid database URL: {exc}", where="data.source.url") from None
    shown = url.render_as_string(hide_password=True)
    _check_sqlite_file(url)
    try:
        engine = sa.create_engine(url)
    except Exception as exc:  # e.g. a missing database driver
        raise DataError(f"cannot use this database: {exc}", where=shown) from None
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_query(sa.text(source.sql), conn)
    except Exception as exc:
        first = str(exc).splitlines()[0]
        raise DataError(f"the query failed: {first}", where=shown) from None
    finally:
        engine.dispose()
    return Collected(frame, shown, notes=[f"sql: {len(frame)} rows from {shown}"])


def _check_sqlite_file(url: URL) -> None:
    """Refuse a SQLite file that does not exist: connecting would create an empty one ("no such table")."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return  # another database, in memory, or a sqlite URI whose `mode=` says what to do
    if not Path(database).is_file():
        raise DataError("database file not found", where=database, fix="check the path in data.source.url")
