"""Secrets never reach what a run prints or leaves on disk: a real `dlpipe run` from PostgreSQL with a
password in its URL (the throwaway server trusts any password), a monitoring store and a webhook
holding tokens; every file the run leaves, and its output, are searched for them."""

from __future__ import annotations

import pytest
import yaml

from conftest import dlpipe
from dlpipe.errors import ConfigError
from dlpipe.redact import redacted, shown_url
from postgres import postgres_url  # noqa: F401  (the fixture)

PASSWORD = "Pg-pass-4f9a1c"
STORE_PASSWORD = "Store-pass-77e0b2"
WEBHOOK_TOKEN = "hook-token-c3d5e8"
QUERY_TOKEN = "query-token-a1b2c3"
SECRETS = (PASSWORD, STORE_PASSWORD, WEBHOOK_TOKEN, QUERY_TOKEN)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://app:pw@db:5432/m", "postgresql+psycopg://app:***@db:5432/m"),
        ("postgresql://app:p/w?#@db/m", "postgresql://app:***@db/m"),  # raw '/', '?', '#' in the password
        (
            "postgresql://app@db/m?sslpassword=pw&sslmode=require",
            "postgresql://app@db/m?sslpassword=***&sslmode=require",
        ),
        ("postgresql://app:${PGPASS}@db/m", "postgresql://app:${PGPASS}@db/m"),  # a reference holds no secret
        ("https://tok3n@mlflow.example/", "https://***@mlflow.example/"),
        ("https://mlflow.example:5000/?api_key=k&x=1", "https://mlflow.example:5000/?api_key=***&x=1"),
        ("sqlite:///dlpipe-monitor.db", "sqlite:///dlpipe-monitor.db"),
        ("data/churn.csv", "data/churn.csv"),
        ("SELECT * FROM t WHERE url = 'http://a:b@c'", "SELECT * FROM t WHERE url = 'http://a:b@c'"),
    ],
)
def test_urls_are_shown_without_their_secrets(url, shown):
    assert shown_url(url) == shown


def test_a_config_is_saved_without_secrets_and_a_redacted_url_is_refused_by_name():
    config = {
        "data": {"source": {"sql": "SELECT 1", "url": "postgresql://u:pw@h/d"}},
        "monitoring": {"store": "postgresql://u:pw@h/d", "webhook": "https://hooks.example/services/T0/B0/x?token=t"},
        "tracking": {"mlflow": "http://bob:pw@mlflow:5000", "experiment": "e"},
    }
    assert redacted(config) == {
        "data": {"source": {"sql": "SELECT 1", "url": "postgresql://u:***@h/d"}},
        "monitoring": {"store": "postgresql://u:***@h/d", "webhook": "https://hooks.example/***?token=***"},
        "tracking": {"mlflow": "http://bob:***@mlflow:5000", "experiment": "e"},
    }
    from dlpipe.monitor.store import Store

    with pytest.raises(ConfigError, match=r"redacted \(\*\*\*\).*--store"):
        Store("postgresql+psycopg://u:***@127.0.0.1:9/d")


@pytest.mark.slow
def test_a_run_leaves_no_secret_anywhere(postgres_url, tmp_path):  # noqa: F811
    import sqlalchemy as sa
    from sklearn.datasets import load_iris

    url = postgres_url.replace("dlpipe@", f"dlpipe:{PASSWORD}@")
    assert PASSWORD in url
    frame = load_iris(as_frame=True).frame
    engine = sa.create_engine(url)
    frame.to_sql("iris_secrets", engine, if_exists="replace", index=False)
    engine.dispose()
    config = {
        "name": "iris_secrets",
        "problem": {"task": "classification", "target": "target"},
        "data": {"source": {"sql": "SELECT * FROM iris_secrets", "url": url}},
        "model": {"hidden": 16},
        "training": {"epochs": 3, "early_stopping": 0},
        "monitoring": {
            "store": url.replace(PASSWORD, STORE_PASSWORD),
            "webhook": f"https://hooks.example/services/T0/B0/{WEBHOOK_TOKEN}?token={QUERY_TOKEN}",
        },
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))
    done = dlpipe("run", "pipeline.yaml", cwd=tmp_path)
    assert done.returncode in (0, 3), done.stderr
    assert "sql: 150 rows from postgresql+psycopg://dlpipe:***@" in done.stdout + done.stderr
    left = [p for p in tmp_path.rglob("*") if p.is_file() and p != tmp_path / "pipeline.yaml"]
    names = {p.name for p in left}
    assert {"pipeline.yaml", "profile.json", "metrics.json", "report.html", "model.json", "index.db"} <= names
    for path in left:
        content = path.read_bytes()
        assert not [s for s in SECRETS if s.encode() in content], path
    for text in (done.stdout, done.stderr):
        assert not [s for s in SECRETS if s in text]
    saved = yaml.safe_load(next(p for p in left if p.name == "pipeline.yaml").read_text())
    assert saved["data"]["source"]["url"] == url.replace(PASSWORD, "***")
    assert saved["monitoring"]["webhook"] == "https://hooks.example/***?token=***"
    print(f"{len(left)} files searched")
