"""`dlpipe runs list | compare` on real run folders: two finished wine runs that differ in two
settings, one interrupted run (a checkpoint left) and one that failed before training."""

from __future__ import annotations

import json

import pytest

from browser import browser_page, screenshot
from conftest import StopAfter, dlpipe, tiny_config
from dlpipe.errors import ArtifactError
from dlpipe.pipeline import Pipeline
from dlpipe.runs import MISSING, config_diff, flatten, list_runs, load_run, metric_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    goal = {"problem": {"metric": "accuracy", "goal": {"accuracy": 0.8}}}
    small = Pipeline.from_dict(tiny_config("wine", training={"epochs": 3}, **goal)).run(root)
    large = Pipeline.from_dict(tiny_config("wine", training={"epochs": 6}, model={"dropout": 0.1}, **goal)).run(root)
    with pytest.raises(KeyboardInterrupt):
        Pipeline.from_dict(tiny_config("iris")).run(root, reporter=StopAfter())
    failed = root / "iris" / "20200101-000000-dead"  # collection passed, then the process died
    failed.mkdir()
    (failed / "pipeline.yaml").write_text("name: iris\nproblem: {task: classification, metric: accuracy}\n")
    broken = root / "iris" / "20190101-000000-beef"  # a file edited by hand into nonsense
    broken.mkdir()
    (broken / "pipeline.yaml").write_text("name: [iris\n")
    return root, small.folder, large.folder


def test_list_shows_every_run_newest_first_with_its_status(run_dir):
    root, small, large = run_dir
    runs = list_runs(root)
    assert len(runs) == 5
    assert [r.started for r in runs] == sorted((r.started for r in runs), reverse=True)
    assert [r.run_id for r in runs[-2:]] == ["20200101-000000-dead", "20190101-000000-beef"]
    status = {r.folder: r.status for r in runs}
    assert status[small] == status[large] == "complete"
    assert sorted(status.values()) == ["complete", "complete", "failed", "interrupted", "unreadable"]

    listed = json.loads(dlpipe("runs", "list", "--run-dir", str(root), "--json").stdout)
    row = next(r for r in listed if r["run_id"] == large.name)
    metrics = json.loads((large / "metrics.json").read_text())
    assert row["test"] == metrics["test"]["accuracy"] and row["validation"] == metrics["validation"]["accuracy"]
    assert row["passed"] == metrics["goal"]["passed"] and row["tuned"] is False and row["epochs"] == 6

    table = dlpipe("runs", "list", "--run-dir", str(root))
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert len(lines) == 6 and "interrupted" in table.stdout and "failed" in lines[-2] and "unreadable" in lines[-1]
    assert any(large.name in line and f"{metrics['test']['accuracy']:.4f}" in line for line in lines)


def test_list_of_a_missing_folder_is_a_clear_error(tmp_path):
    result = dlpipe("runs", "list", "--run-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == f"error: {tmp_path / 'nowhere'}: no such run folder (pass --run-dir where `dlpipe run` wrote runs)"
    )


def test_compare_sets_config_diff_metrics_and_goals_side_by_side(run_dir):
    root, small, large = run_dir
    result = dlpipe("runs", "compare", f"wine/{small.name}", str(large), "--run-dir", str(root))
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 3}
    assert "3" in rows["training.epochs"] and "6" in rows["training.epochs"]
    assert "0.5" in rows["model.dropout"] and "0.1" in rows["model.dropout"]
    assert "name" not in rows and "model.hidden" not in rows  # only the keys that differ
    ran = [cell.split()[0] for cell in rows["epochs (kept)"].split("│")[2:4]]
    assert ran == ["3", "6"]
    runs = [load_run(small), load_run(large)]
    log_loss = next(r for r in metric_rows(runs) if r.split == "test" and r.name == "log_loss")
    better = min(range(2), key=lambda i: log_loss.values[i])  # lower is better for a loss
    assert log_loss.best == [better]
    assert rows["test log_loss"].split("│")[2 + better].strip().endswith("*")


def test_compare_needs_runs_that_exist(run_dir):
    root, small, _ = run_dir
    for args in ([str(small)], [str(small), "wine/nope"]):
        result = dlpipe("runs", "compare", *args, "--run-dir", str(root))
        assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_compare_page_in_a_browser(run_dir, tmp_path):
    _, small, large = run_dir
    page_path = tmp_path / "compare.html"
    result = dlpipe("runs", "compare", str(small), str(large), "--html", str(page_path))
    assert result.returncode == 0, result.stderr
    html = page_path.read_text()
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    with browser_page() as (page, errors):
        page.goto(page_path.as_uri())
        assert errors == []
        assert page.locator("h2").first.inner_text().startswith(("Best on test accuracy", "No run is better"))
        charts = page.locator("svg")
        assert charts.count() == 2
        for i in range(2):
            assert charts.nth(i).locator("polyline").count() == 2  # one line per run
        assert page.get_by_text("training.epochs").count() == 1
        screenshot(page, "runs-compare")


def test_config_diff_names_dotted_keys_and_absent_ones():
    a = {"model": {"hidden": 32, "dropout": 0.5}, "tuning": None, "features": {}}
    b = {"model": {"hidden": 32, "dropout": 0.1}, "features": {"x": {"type": "numeric"}}}
    assert flatten(a) == {"model.hidden": 32, "model.dropout": 0.5, "tuning": None, "features": {}}
    diff = dict(config_diff([a, b]))
    assert diff == {
        "model.dropout": [0.5, 0.1],
        "tuning": [None, MISSING],
        "features": [{}, MISSING],
        "features.x.type": [MISSING, "numeric"],
    }


def test_a_history_line_cut_short_by_a_kill_is_left_out(tmp_path):
    folder = tmp_path / "iris" / "20261207-120000-abcd"
    folder.mkdir(parents=True)
    (folder / "pipeline.yaml").write_text("name: iris\n")
    (folder / "history.jsonl").write_text('{"epoch": 1, "train_loss": 0.9}\n{"epoch": 2, "tra')
    assert [r["epoch"] for r in load_run(folder).history] == [1]
    (folder / "history.jsonl").write_text('{"epoch": 1, "tra\n{"epoch": 2}\n')
    with pytest.raises(ArtifactError, match=r"history\.jsonl line 1 is not JSON"):
        load_run(folder)
