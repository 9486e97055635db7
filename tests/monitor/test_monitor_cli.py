"""`dlpipe feedback` and `dlpipe monitor` on the command line: exit codes and one-line errors."""

from __future__ import annotations

import json
import time

import pytest

from conftest import dlpipe
from dlpipe.monitor.recorder import Entry, Recorder
from dlpipe.monitor.store import Store
from dlpipe.pipeline import Pipeline
from loopback import wine_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A wine model and a store holding its predictions of the test rows."""
    folder = tmp_path_factory.mktemp("cli")
    config = wine_config()
    result = Pipeline.from_dict(config).run(folder / "runs")
    test = Pipeline.from_dict(config).prepare().splits["test"].frame.reset_index(drop=True)
    store = f"sqlite:///{folder / 'm.db'}"
    model = result.model_folder
    from dlpipe.package import load_model

    predicted = load_model(model).predict(test.drop(columns=["target"]))
    recorder = Recorder(store, "wine", "1", {c: "numeric" for c in test.columns if c != "target"})
    recorder.start()
    ids = [f"row-{i}" for i in range(len(test))]
    probabilities = predicted[[c for c in predicted if c.startswith("proba_")]].to_numpy()
    frame = test.drop(columns=["target"])
    recorder.record(Entry(ids, frame, predicted["prediction"].to_numpy(), probabilities, time.time(), 1.0))
    recorder.stop()
    return model, store, folder, test, ids


def test_feedback_from_a_csv_then_monitor(logged):
    model, store, folder, test, ids = logged
    labels = folder / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(ids, test["target"], strict=True)))
    done = dlpipe("feedback", str(model), str(labels), "--store", store)
    assert done.returncode == 0 and f"stored {len(ids)} labels" in done.stderr
    report = json.loads(dlpipe("monitor", str(model), "--store", store, "--json").stdout)
    assert report["performance"]["labelled"] == len(ids) and report["performance"]["coverage"] == 1.0
    assert report["performance"]["metrics"]["accuracy"] == pytest.approx(
        json.loads((model / "model.json").read_text())["metrics"]["test"]["accuracy"]
    )
    shown = dlpipe("monitor", str(model), "--store", store)
    assert shown.returncode == 0 and "healthy" in shown.stdout and "alcohol" in shown.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("id,label\nrow-1,class_0\nrow-2,merlot\n", "labels.csv:3: unknown class 'merlot'"),
        ("id,truth\nrow-1,class_0\n", "no column 'label'"),
        ("id,label\n,class_0\n", "labels.csv:2: id must be a non-empty string"),
    ],
)
def test_bad_labels_name_the_file_and_line(logged, tmp_path, content, expected):
    model, store, _, _, _ = logged
    (tmp_path / "labels.csv").write_text(content)
    done = dlpipe("feedback", str(model), str(tmp_path / "labels.csv"), "--store", store)
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr


def test_monitor_mistakes_are_one_line_errors(logged, tmp_path):
    model, _, _, _, _ = logged
    cases = [
        (["--since", "yesterday"], "--since: 'yesterday' is neither a duration"),
        (["--store", "nonsense://"], "nonsense://: cannot use this database"),
        (["--store", f"sqlite:///{tmp_path / 'no' / 'such.db'}"], "cannot read the prediction store"),
    ]
    for extra, expected in cases:
        done = dlpipe("monitor", str(model), *extra)
        assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_monitor_since_leaves_older_rows_out(logged, tmp_path):
    model, store, _, _, _ = logged
    empty = json.loads(dlpipe("monitor", str(model), "--store", store, "--since", "2999-01-01", "--json").stdout)
    assert empty["rows"] == 0 and empty["alerts"] == [] and empty["windows"] == []
    recent = json.loads(dlpipe("monitor", str(model), "--store", store, "--since", "1h", "--json").stdout)
    assert recent["rows"] == Store(store).count("wine")


def test_only_the_latest_windows_are_read(logged):
    from dlpipe.monitor.report import monitor

    model, store, _, _, _ = logged
    report = monitor(model, store=store, window=10, windows=2, notify=False)
    assert report["rows"] == 20 and len(report["windows"]) == 2
    newest = Store(store).predictions("wine", latest=20)
    assert newest["id"].tolist() == Store(store).predictions("wine")["id"].tolist()[-20:]
    done = dlpipe("monitor", str(model), "--store", store, "--windows", "0")
    assert done.returncode == 2 and "--windows must be at least 1" in done.stderr
