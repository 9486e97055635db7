"""Streamed preparation: one-pass states match the in-memory fit, hash splits are stable, and a
streamed run trains, packages and predicts like an in-memory one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dlpipe import features
from dlpipe.collect.stream import open_stream
from dlpipe.errors import ConfigError, DataError
from dlpipe.package import load_model
from dlpipe.pipeline import Pipeline, data_fingerprint
from dlpipe.prepare.streamed import prepare_streamed
from dlpipe.spec import FeatureSpec, validate_spec

ROWS = 4_000


def table(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, rows).round(2),
            "score": rng.normal(0, 1, rows),
            "plan": rng.choice(["free", "pro", "team", "rare"], rows, p=[0.5, 0.3, 0.1995, 0.0005]),
            "active": rng.choice(["yes", "no"], rows),
            "signed_up": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D"),
            "region": rng.choice(["n", "s", "e", "w"], rows),
        }
    )
    frame.loc[::17, "amount"] = np.nan
    frame.loc[::23, "plan"] = None
    logit = 1.2 * frame["score"] + (frame["plan"] == "pro") - 0.5 * (frame["active"] == "no")
    frame["churned"] = np.where(logit + rng.logistic(size=rows) > 0.3, "yes", "no")
    return frame


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("streamed") / "customers.parquet"
    table().to_parquet(path, row_group_size=1_000)
    return path


def config(source, **data) -> dict:
    return {
        "name": "churn",
        "problem": {"task": "classification", "target": "churned"},
        "data": {"source": str(source), "streaming": "on", "batch_rows": 500, **data},
        "model": {"hidden": 32},
        "training": {"epochs": 6, "early_stopping": 0, "batch_size": 128},
    }


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("numeric", None),
        ("numeric", FeatureSpec(scale="robust")),
        ("numeric", FeatureSpec(scale="quantile", missing="mean")),
        ("numeric", FeatureSpec(missing="most_frequent")),
        ("category", None),
        ("binary", None),
        ("datetime", None),
    ],
)
def test_one_pass_state_matches_the_in_memory_fit(kind, spec):
    frame = table()
    name = {"numeric": "amount", "category": "plan", "binary": "active", "datetime": "signed_up"}[kind]
    fitter = features.get(kind).fitter(name, spec)
    for rows in np.array_split(np.arange(len(frame)), 9):
        fitter.update(frame[name].iloc[rows])
    streamed, whole = fitter.state(), features.get(kind).fit(frame[name], spec)
    assert streamed.keys() == whole.keys()
    for key, value in whole.items():
        if isinstance(value, float | list) and not isinstance(value, bool) and kind != "category":
            np.testing.assert_allclose(streamed[key], value, rtol=1e-9, err_msg=key)
        else:
            assert streamed[key] == value, key
    assert fitter.profile(kind, "r")["missing_rate"] == round(frame[name].isna().mean(), 6)


def test_hash_split_is_stable_across_batch_sizes_and_runs(parquet, tmp_path):
    spec = validate_spec(config(parquet))
    prepared = [
        prepare_streamed(spec, open_stream(str(parquet), batch), tmp_path / f"cache{batch}") for batch in (300, 1_000)
    ]
    assert prepared[0].profile["splits"] == prepared[1].profile["splits"]
    assert data_fingerprint(prepared[0]) == data_fingerprint(prepared[1])
    # types are inferred on the first batch's training rows: only their reasons' counts differ, and
    # merged sums only in the last bits
    one, other = (p.preprocessor for p in prepared)
    for a, b in zip(one.columns, other.columns, strict=True):
        assert a.type == b.type and a.state.keys() == b.state.keys()
        for key, value in a.state.items():
            assert b.state[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value)
    splits = prepared[0].profile["splits"]
    assert abs(splits["train"] / ROWS - 0.7) < 0.03 and abs(splits["test"] / ROWS - 0.15) < 0.03
    assert any("not stratified" in n for n in prepared[0].profile["notes"])
    header = json.loads((tmp_path / "cache300" / "header.json").read_text())
    train = header["splits"]["train"]
    numeric = np.memmap(tmp_path / "cache300" / train["arrays"]["numeric"]["file"], dtype="<f4", mode="r")
    assert numeric.reshape(train["rows"], 2, 2).shape[0] == splits["train"]  # a plain memmap reads it
    assert np.array_equal(prepared[0].splits["train"].read(0, 5)["numeric"], numeric.reshape(-1, 2, 2)[:5])


def test_group_split_keeps_groups_together(tmp_path):
    frame = table()
    frame["household"] = [f"h{i // 4}" for i in range(ROWS)]  # households of 4 rows, in batches of 700
    frame.to_parquet(tmp_path / "households.parquet")
    spec = validate_spec(config(tmp_path / "households.parquet", split={"method": "group", "column": "household"}))
    prepared = prepare_streamed(spec, open_stream(str(tmp_path / "households.parquet"), 700), tmp_path / "cache")
    assert "household" not in [c.name for c in prepared.preprocessor.columns]
    counts = [prepared.profile["splits"][s] for s in ("train", "validation", "test")]
    assert sum(counts) == ROWS and all(c % 4 == 0 for c in counts)  # whole households only


def test_streamed_run_matches_the_in_memory_run(parquet, tmp_path):
    streamed = Pipeline.from_dict(config(parquet)).run(tmp_path / "runs")
    in_memory = Pipeline.from_dict(config(parquet, streaming="off")).run(tmp_path / "runs")
    # their test splits differ (a hash split, a stratified one): score both on the same new rows
    fresh = table(3_000, seed=9)
    scores = [
        roc_auc_score(fresh["churned"] == "yes", load_model(r.model_folder).predict(fresh)["proba_yes"])
        for r in (streamed, in_memory)
    ]
    assert abs(scores[0] - scores[1]) < 0.02 and min(scores) > 0.7, scores
    assert not (streamed.folder / "cache").exists()  # removed with the run's end, like the checkpoint
    profile = json.loads((streamed.folder / "profile.json").read_text())
    assert profile["streamed"]["batch_rows"] == 500 and profile["columns"]["plan"]["type"] == "category"
    model = load_model(streamed.model_folder)
    predicted = model.predict(table(200, seed=5).drop(columns=["churned"]))
    assert len(predicted) == 200 and set(predicted["prediction"]) <= {"yes", "no"}
    reference = pd.read_parquet(streamed.model_folder / "reference.parquet")
    assert len(reference) == 2000 and "prediction" in reference


def test_streamed_data_refuses_what_it_cannot_do(tmp_path):
    frame = table(600)
    frame["note"] = [f"a long free text note number {i} about this customer" for i in range(600)]
    path = tmp_path / "with_text.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="column 'note' is text: streamed data takes"):
        Pipeline.from_dict(config(path)).prepare()
    with pytest.raises(ConfigError, match="time split"):
        Pipeline.from_dict(config(path, split={"method": "time", "column": "signed_up"})).prepare()
    tuned = {**config(path), "tuning": {"trials": 2, "space": {"model.dropout": {"float": [0.0, 0.5]}}}}
    with pytest.raises(ConfigError, match="tuning does not run on streamed data"):
        Pipeline.from_dict(tuned).run(tmp_path / "runs")
    assert not list((tmp_path / "runs").glob("*/.cache-*"))  # no cache left behind


def test_validate_streams_and_leaves_no_cache(parquet, tmp_path, monkeypatch):
    import yaml

    from conftest import dlpipe

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the child's temporary cache goes
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config(parquet)))
    done = dlpipe("validate", str(tmp_path / "pipeline.yaml"))
    assert done.returncode == 0, done.stderr
    assert "split (stratified)" in done.stdout and "not stratified" in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["pipeline.yaml"]
