"""SQL sources on a real PostgreSQL server: a table larger than the batch size, read in batches
through a server-side cursor, gives the same table as one read; errors name the database."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from dlpipe.collect import collect
from dlpipe.collect.sql import count_sql_rows, sql_batches
from dlpipe.errors import DataError
from dlpipe.spec import SqlSource
from postgres import postgres_url  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow
ROWS = 5_000


@pytest.fixture(scope="module")
def table(postgres_url):  # noqa: F811
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": np.arange(ROWS),
            "amount": np.round(rng.normal(50, 10, ROWS), 2),
            "plan": rng.choice(["free", "pro", "team"], ROWS),
            "active": rng.random(ROWS) < 0.3,
            "signed_up": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, ROWS), unit="D"),
        }
    )
    frame.loc[::50, "amount"] = np.nan
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        frame.to_sql("customers", conn, index=False, if_exists="replace")
        # NUMERIC arrives as Decimal: the reader must give floats, as pandas.read_sql does
        conn.execute(sa.text("ALTER TABLE customers ALTER COLUMN amount TYPE numeric(10, 2)"))
    engine.dispose()
    return frame


def test_postgres_table_reads_whole(postgres_url, table):  # noqa: F811
    collected = collect(SqlSource(sql="SELECT * FROM customers ORDER BY id", url=postgres_url))
    frame = collected.frame
    assert len(frame) == ROWS and list(frame.columns) == list(table.columns)
    assert frame["amount"].dtype == float and frame["amount"].isna().sum() == ROWS // 50
    np.testing.assert_allclose(frame["amount"], table["amount"])
    assert frame["plan"].tolist() == table["plan"].tolist()
    assert (frame["signed_up"] == table["signed_up"]).all()
    assert collected.notes == [f"sql: {ROWS} rows from {postgres_url}"]


def test_postgres_reads_in_batches_through_a_server_side_cursor(postgres_url, table):  # noqa: F811
    source = SqlSource(sql="SELECT * FROM customers ORDER BY id", url=postgres_url)
    batches = sql_batches(source, 1_000)
    first = next(batches)
    # a server-side cursor: the streaming session's last statement fetches from a named cursor
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        queries = conn.execute(
            sa.text("SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()")
        ).scalars()
        assert any(q.upper().startswith("FETCH FORWARD") for q in queries)
    engine.dispose()
    rest = list(batches)
    assert [len(b) for b in [first, *rest]] == [1_000] * 5
    joined = pd.concat([first, *rest], ignore_index=True)
    assert joined["id"].tolist() == list(range(ROWS))
    assert count_sql_rows(source) == ROWS


def test_postgres_errors_name_the_database(postgres_url, table):  # noqa: F811
    with pytest.raises(DataError) as info:
        collect(SqlSource(sql="SELECT * FROM nowhere", url=postgres_url))
    assert "nowhere" in str(info.value) and "127.0.0.1" in str(info.value)
    unreachable = postgres_url.rsplit(":", 1)[0] + ":1/postgres"
    with pytest.raises(DataError, match="the query failed"):
        collect(SqlSource(sql="SELECT 1", url=unreachable.replace("dlpipe@", "dlpipe:secret@")))


def test_streamed_run_on_postgres(postgres_url, table, tmp_path):  # noqa: F811
    from dlpipe.pipeline import Pipeline

    config = {
        "name": "pg-stream",
        "problem": {"task": "classification", "target": "plan"},
        "data": {
            "source": {"sql": "SELECT * FROM customers ORDER BY id", "url": postgres_url},
            "streaming": "on",
            "batch_rows": 1_000,
        },
        "model": {"hidden": 16},
        "training": {"epochs": 2, "early_stopping": 0},
    }
    result = Pipeline.from_dict(config).run(tmp_path / "runs")
    profile = (result.folder / "profile.json").read_text()
    assert '"streamed"' in profile and '"id"' in profile  # the ID column was seen, and ignored
    splits = json.loads(profile)["splits"]
    assert splits["train"] + splits["validation"] + splits["test"] == ROWS
    from dlpipe.package import load_model

    predicted = load_model(result.model_folder).predict(table.drop(columns=["plan"]).head(50))
    assert set(predicted["prediction"]) <= {"free", "pro", "team"} and len(predicted) == 50
