"""`tracking:` on real backends: MLflow on a SQLite database in a temporary folder, read back with
MlflowClient, and TensorBoard event files read back record by record."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import StopAfter, tiny_config
from dlpipe.errors import ConfigError
from dlpipe.pipeline import Pipeline
from dlpipe.spec import validate_spec

pytestmark = pytest.mark.slow
mlflow_tracking = pytest.importorskip("mlflow.tracking")


def _history(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def _scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in TensorBoard's event files (TFRecord framing around Event protos)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    found: dict[str, list[tuple[int, float]]] = {}
    for path in logdir.glob("events.out.tfevents.*"):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + length])
            i += 12 + length + 4
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    """One database for the module: MLflow's first use of a SQLite file builds its tables (seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def test_a_run_logs_params_epochs_metrics_and_files_to_mlflow_and_tensorboard(tmp_path, mlflow_uri):
    uri = mlflow_uri
    config = tiny_config(
        "wine",
        problem={"metric": "accuracy", "goal": {"accuracy": 0.5}},
        training={"epochs": 5},
        tracking={"mlflow": uri, "tensorboard": str(tmp_path / "tb")},
    )
    with pytest.raises(KeyboardInterrupt):
        Pipeline.from_dict(config).run(tmp_path / "runs", reporter=StopAfter())
    client = mlflow_tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("wine")
    (interrupted,) = client.search_runs([experiment.experiment_id])
    assert interrupted.info.status == "KILLED"

    result = Pipeline.from_dict(config).run(tmp_path / "runs", resume=True)
    (run,) = client.search_runs([experiment.experiment_id])  # the resumed run carries on in the same MLflow run
    assert run.info.run_id == interrupted.info.run_id and run.info.status == "FINISHED"
    assert run.info.run_name == result.folder.name
    params = run.data.params
    assert params["training.epochs"] == "5" and params["problem.metric"] == "accuracy"
    assert params["data.source.builtin"] == "wine" and params["model.hidden"] == "32"
    history = _history(result.folder)
    steps = client.get_metric_history(run.info.run_id, "validation_accuracy")
    assert sorted((m.step, m.value) for m in steps) == [(h["epoch"], h["validation"]) for h in history]
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 5
    for name, value in result.metrics["test"].items():
        assert run.data.metrics[f"test_{name}"] == pytest.approx(value)
    assert run.data.metrics["best_validation_accuracy"] == pytest.approx(result.metrics["validation"]["accuracy"])
    assert run.data.tags["goal"] == ("pass" if result.passed else "fail")
    assert run.data.tags["dlpipe.run_folder"] == str(result.folder.resolve())
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "pipeline.yaml", "metrics.json", "model"} <= files
    model = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.json", "model/model.safetensors"} <= model
    beside = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / run.info.run_id
    assert (beside / "artifacts" / "report.html").is_file()  # beside the database, not in the working folder

    scalars = _scalars(tmp_path / "tb" / "wine" / result.folder.name)
    assert sorted(scalars["validation/accuracy"]) == [(h["epoch"], pytest.approx(h["validation"])) for h in history]
    assert [s for s, _ in sorted(scalars["loss/train"])] == [1, 2, 3, 4, 5]
    assert scalars["final/test_accuracy"][0][1] == pytest.approx(result.metrics["test"]["accuracy"])


def test_a_search_logs_its_trials_as_nested_runs(tmp_path, mlflow_uri):
    uri = mlflow_uri
    tuning = {"method": "grid", "space": {"training.learning_rate": [0.001, 0.01]}}
    config = tiny_config("iris", training={"epochs": 3}, tuning=tuning, tracking={"mlflow": uri, "experiment": "x"})
    result = Pipeline.from_dict(config).run(tmp_path / "runs")
    client = mlflow_tracking.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("x").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(t.data.params["training.learning_rate"] for t in trials) == ["0.001", "0.01"]
    assert all("validation_accuracy" in t.data.metrics for t in trials)
    assert parent.data.tags["tuned"] == "true"
    steps = client.get_metric_history(parent.info.run_id, "validation_loss")  # the best trial's epochs
    assert [m.step for m in sorted(steps, key=lambda m: m.step)] == [h["epoch"] for h in _history(result.folder)]


def _run_without(modules: tuple[str, ...], pipeline) -> subprocess.CompletedProcess:
    """`dlpipe run` in a child process where importing `modules` fails, as when they are not installed."""
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in modules)
    code = f"import sys; {blocked}; from dlpipe.cli import main; main(sys.argv[1:])"
    args = ["run", str(pipeline), "--run-dir", str(pipeline.parent / "runs")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    ("section", "modules", "fix"),
    [
        ({"mlflow": "sqlite:///mlflow.db"}, ("mlflow",), "pip install mlflow-skinny"),
        ({"tensorboard": "tb"}, ("tensorboard", "tensorboardX"), "pip install tensorboard"),
    ],
)
def test_a_missing_backend_is_a_clear_error_before_training(tmp_path, section, modules, fix):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tracking=section)))
    result = _run_without(modules, path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert fix in result.stderr and "tracking." in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_an_unreachable_server_names_it_without_its_password(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tracking={"mlflow": "http://bob:${MLFLOW_SECRET}@127.0.0.1:9/"})))
    env = {**os.environ, "MLFLOW_SECRET": "hunter2", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "dlpipe.cli", "run", str(path), "--run-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot log to MLflow at http://bob:***@127.0.0.1:9" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_the_section_names_unknown_keys_and_unset_variables(monkeypatch):
    with pytest.raises(ConfigError, match="did you mean 'mlflow'"):
        validate_spec(tiny_config(tracking={"mlfow": "sqlite:///x.db"}))
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    spec = validate_spec(tiny_config(tracking={"mlflow": "http://${NO_SUCH_VARIABLE}@h/"}))
    with pytest.raises(ConfigError, match="NO_SUCH_VARIABLE is not set"):
        Pipeline(spec).run()
