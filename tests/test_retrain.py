"""`dlpipe retrain`: a challenger trained on new rows and feedback replaces the champion only when it
is better on the newest rows; a weak one is kept out (exit 5)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import dlpipe
from dlpipe.monitor.store import Store
from dlpipe.registry import Registry
from dlpipe.serve.app import Settings
from loopback import running

pytestmark = pytest.mark.slow


def rows(n: int, seed: int, concept: str) -> pd.DataFrame:
    """Four numbers; the label follows x0 in the old world and x1 in the new one."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=["x0", "x1", "x2", "x3"])
    signal = frame.x0 if concept == "old" else frame.x1
    frame["churned"] = np.where(signal + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    return frame


def write_pipeline(folder, name: str, store: str, **training) -> str:
    config = {
        "name": "churn",
        "problem": {"task": "classification", "target": "churned", "metric": "accuracy", "goal": {"accuracy": 0.65}},
        "data": {"source": "old.csv"},
        "training": {"epochs": 15, "early_stopping": 0, "learning_rate": 1e-3, **training},
        "monitoring": {"store": store, "window": 500, "min_labels": 30},
        "retrain": {"min_improvement": 0.02},
    }
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def first_champion(tmp_path) -> tuple[str, str, str, Registry]:
    """The old world's data, a pipeline logging to a store there, and its first run as champion:
    (pipeline file, store URL, runs folder, registry)."""
    rows(1500, 0, "old").to_csv(tmp_path / "old.csv", index=False)
    store = f"sqlite:///{tmp_path / 'monitor.db'}"
    pipeline = write_pipeline(tmp_path, "p.yaml", store)
    runs = str(tmp_path / "runs")
    assert dlpipe("run", pipeline, "--run-dir", runs, "-q").returncode == 0
    return pipeline, store, runs, Registry(tmp_path / "dlpipe-registry")


def test_new_concept_alert_retrain_promote_swap_rollback(tmp_path, monkeypatch):
    pipeline, store, runs, registry = first_champion(tmp_path)
    assert registry.alias("churn", "champion").version == 1
    monkeypatch.setenv("DLPIPE_REGISTRY", str(registry.root))

    # the world changes: traffic follows the new concept, and its labels come back as feedback
    new = rows(2000, 1, "new")
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()
    with running("models:/churn@champion", settings=Settings(poll_seconds=0.2), store=store) as url:
        ids = []
        for start in range(0, len(new), 250):
            chunk = new.iloc[start : start + 250].drop(columns=["churned"]).to_dict(orient="records")
            ids += httpx.post(f"{url}/predict", json={"instances": chunk}).json()["ids"]
        labels = [{"id": i, "label": y} for i, y in zip(ids, new["churned"], strict=True)]
        assert httpx.post(f"{url}/feedback", json=labels).json() == {"received": 2000}
        deadline = time.time() + 30
        while Store(store).count("churn") < 2000:
            assert time.time() < deadline
            time.sleep(0.05)
        monitored = dlpipe("monitor", "models:/churn@champion", "--json")
        assert monitored.returncode == 4
        assert {a["kind"] for a in json.loads(monitored.stdout)["alerts"]} >= {"below_goal", "below_test"}

        def client() -> None:  # a user of the service while it is retrained, swapped and rolled back
            probe = new.drop(columns=["churned"]).head(3).to_dict(orient="records")
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    answer = http.post(f"{url}/predict", json={"instances": probe})
                    seen.append((answer.status_code, answer.json().get("version")))
                    time.sleep(0.01)

        sender = threading.Thread(target=client)
        sender.start()
        retrained = dlpipe("retrain", pipeline, "--run-dir", runs, "-q")
        assert retrained.returncode == 0, retrained.stdout + retrained.stderr
        assert "PROMOTED: version 2" in retrained.stdout
        _wait_for_version(seen, "2")
        back = dlpipe("models", "rollback", "churn")
        assert back.returncode == 0 and registry.alias("churn", "champion").version == 1
        _wait_for_version(seen, "1")
        stop.set()
        sender.join()
    assert {status for status, _ in seen} == {200}
    comparison = json.loads(next((tmp_path / "runs" / "churn").glob("*/comparison.json")).read_text())
    assert comparison["feedback_rows"] == 2000 and comparison["holdout_rows"] == 700
    assert comparison["challenger"]["holdout"]["accuracy"] > comparison["champion"]["holdout"]["accuracy"] + 0.1
    assert registry.get("churn", 2).parent == 1


def _wait_for_version(seen: list, version: str) -> None:
    deadline = time.time() + 30
    while not seen or seen[-1][1] != version:
        assert time.time() < deadline, f"the server did not swap to version {version}"
        time.sleep(0.05)


def test_a_weak_challenger_keeps_the_champion(tmp_path):
    _, store, runs, _ = first_champion(tmp_path)
    weak = write_pipeline(tmp_path, "weak.yaml", store, epochs=1, learning_rate=1e-5)
    kept = dlpipe("retrain", weak, "--run-dir", runs, "-q")
    assert kept.returncode == 5 and "KEPT the champion" in kept.stdout
    assert Registry(tmp_path / "dlpipe-registry").alias("churn", "champion").version == 1


def test_retrain_without_a_champion_is_a_clear_error(tmp_path):
    rows(200, 0, "old").to_csv(tmp_path / "old.csv", index=False)
    done = dlpipe("retrain", write_pipeline(tmp_path, "p.yaml", "sqlite:///m.db"), "--run-dir", str(tmp_path / "r"))
    assert done.returncode == 2 and "has no champion" in done.stderr and "Traceback" not in done.stderr


def _log_new_concept(store: str, model, n: int = 2000) -> None:
    """Predictions of the new-concept rows by `model`, logged with their true labels."""
    from dlpipe.monitor.recorder import Entry, Recorder
    from dlpipe.package import load_model

    new = rows(n, 1, "new")
    loaded = load_model(model)
    features = new.drop(columns=["churned"])
    predicted = loaded.predict(features)
    recorder = Recorder(store, "churn", loaded.manifest["version"], {c: "numeric" for c in features})
    recorder.start()
    ids = [f"r{i}" for i in range(n)]
    proba = predicted[[f"proba_{c}" for c in loaded.classes]].to_numpy()
    recorder.record(Entry(ids, features, predicted["prediction"].to_numpy(), proba, time.time(), 1.0))
    recorder.stop()
    Store(store).add_feedback(list(zip(ids, new["churned"], strict=True)), time.time())


def test_watch_retrains_on_an_alert_then_rests(tmp_path):
    pipeline, store, runs, registry = first_champion(tmp_path)
    _log_new_concept(store, registry.alias("churn", "champion").folder)
    watched = dlpipe("watch", pipeline, "--every", "1s", "--rounds", "2", "--run-dir", runs)
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[0].startswith("alerts: below_") and lines[1].startswith("promoted: ")
    assert lines[2] == "healthy: 0 predictions, no alert"  # version 2 has answered nothing yet
    assert registry.alias("churn", "champion").version == 2


def test_monitor_retrain_flag(tmp_path):
    pipeline, store, runs, registry = first_champion(tmp_path)
    champion = registry.alias("churn", "champion").folder
    _log_new_concept(store, champion)
    done = dlpipe("monitor", str(champion), "--retrain", pipeline, "--run-dir", runs)
    assert done.returncode == 0 and "ALERT" in done.stdout and "promoted: " in done.stderr
    again = dlpipe("monitor", str(champion), "--all-versions", "--json")
    assert again.returncode == 4  # version 1's own rows still show its failure


def test_warm_start_trains_on_from_the_champion(tmp_path):
    from dlpipe.package import load_model
    from dlpipe.pipeline import Pipeline

    _, store, runs, registry = first_champion(tmp_path)
    champion = registry.alias("churn", "champion").folder

    # hardly any training from the champion's weights: the champion's answers, its preprocessing
    still = Pipeline.from_yaml(write_pipeline(tmp_path, "still.yaml", store, epochs=1, learning_rate=1e-7))
    result = still.run(tmp_path / "still", warm_start=champion)
    probe = rows(200, 5, "old").drop(columns=["churned"])
    ours, theirs = load_model(result.model_folder), load_model(champion)
    assert ours.preprocessor.to_dict() == theirs.preprocessor.to_dict()
    cold = load_model(still.run(tmp_path / "cold").model_folder)  # the same training from scratch
    champion_says = theirs.predict(probe)["proba_yes"].to_numpy()
    # only batch norm's running statistics moved to the new rows; a cold start has learnt nothing yet
    assert np.abs(ours.predict(probe)["proba_yes"].to_numpy() - champion_says).mean() < 0.03
    assert np.abs(cold.predict(probe)["proba_yes"].to_numpy() - champion_says).mean() > 0.2

    # a retrain with warm_start on the new concept
    _log_new_concept(store, champion)
    config = yaml.safe_load((tmp_path / "p.yaml").read_text())
    config["retrain"]["warm_start"] = True
    (tmp_path / "warm.yaml").write_text(yaml.safe_dump(config))
    done = dlpipe("retrain", str(tmp_path / "warm.yaml"), "--run-dir", runs, "-q")
    assert done.returncode in (0, 5), done.stdout + done.stderr  # promoted or not, by the goal on new rows
    comparison = json.loads(next((tmp_path / "runs" / "churn").glob("*/comparison.json")).read_text())
    assert comparison["warm_start"] is True
    assert comparison["challenger"]["holdout"]["accuracy"] > comparison["champion"]["holdout"]["accuracy"] + 0.1
