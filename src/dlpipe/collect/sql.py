"""SQL sources through SQLAlchemy: any database with a URL (tested on SQLite and PostgreSQL).

Rows arrive in batches through a server-side cursor (`stream_results`), so a query larger than
memory can be streamed; the in-memory path joins the batches into one table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dlpipe.collect import Collected
from dlpipe.errors import DataError
from dlpipe.redact import shown_url

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import URL

BATCH_ROWS = 65_536


def read_sql(source) -> Collected:
    """Run the query and return its rows; errors name the (password-masked) URL."""
    import pandas as pd

    frames = list(sql_batches(source, BATCH_ROWS))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    shown = shown_url(source.url)
    return Collected(frame, shown, notes=[f"sql: {len(frame)} rows from {shown}"])


def _url(text: str) -> URL:
    import sqlalchemy as sa

    from dlpipe.spec.monitoring import expand

    text = expand(text, "data.source.url") or ""
    try:
        return sa.engine.make_url(text)
    except Exception as exc:
        raise DataError(f"not a valid database URL: {exc}", where="data.source.url") from None


def sql_batches(source, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The query's rows as tables of at most `batch_rows` rows, read with a server-side cursor.

    The first batch always comes (with no rows when the query returns none), so callers see the
    columns; a failing query or connection names the database.
    """
    import pandas as pd
    import sqlalchemy as sa

    url = _url(source.url)
    shown = shown_url(source.url)
    _check_sqlite_file(url)
    try:
        engine = sa.create_engine(url)
    except Exception as exc:  # e.g. a missing database driver
        raise DataError(f"cannot use this database: {exc}", where=shown) from None
    try:
        with engine.connect() as conn:
            # stream_results: a named (server-side) cursor on PostgreSQL, fetchmany on SQLite
            options = conn.execution_options(stream_results=True, yield_per=batch_rows)
            try:
                result = options.execute(sa.text(source.sql))
                columns = list(result.keys())
                parts = result.partitions(batch_rows)
                first = next(parts, [])
            except Exception as exc:
                raise DataError(f"the query failed: {str(exc).splitlines()[0]}", where=shown) from None
            yield pd.DataFrame.from_records(first, columns=columns, coerce_float=True)
            while True:
                try:
                    part = next(parts, None)
                except Exception as exc:
                    raise DataError(f"the query failed: {str(exc).splitlines()[0]}", where=shown) from None
                if part is None:
                    break
                yield pd.DataFrame.from_records(part, columns=columns, coerce_float=True)
    except DataError:
        raise
    except Exception as exc:  # connecting: a refused connection, bad credentials
        raise DataError(f"the query failed: {str(exc).splitlines()[0]}", where=shown) from None
    finally:
        engine.dispose()


def count_sql_rows(source) -> int | None:
    """How many rows the query returns (`SELECT COUNT(*)` around it), or None when that fails."""
    import sqlalchemy as sa

    url = _url(source.url)
    _check_sqlite_file(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = source.sql.strip().rstrip(";")
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM ({query}) AS counted")).scalar_one())
    except Exception:
        return None  # the read itself will name the problem
    finally:
        engine.dispose()


def _check_sqlite_file(url: URL) -> None:
    """Refuse a SQLite file that does not exist: connecting would create an empty one ("no such table")."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return  # another database, in memory, or a sqlite URI whose `mode=` says what to do
    if not Path(database).is_file():
        raise DataError("database file not found", where=database, fix="check the path in data.source.url")
