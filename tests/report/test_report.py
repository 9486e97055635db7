"""report.html in a real browser: every run writes one; the verdict comes first, every chart has
marks, nothing is fetched, and a 10,000-row test set still gives a small page that renders fast."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from browser import browser_page, screenshot
from conftest import tiny_config
from dlpipe.pipeline import Pipeline

pytestmark = pytest.mark.slow


def _check(page, errors) -> None:
    assert errors == []
    first = page.locator("h2").first.inner_text()
    assert first.startswith(("PASS", "FAIL", "no goal")), first
    charts = page.locator("svg")
    assert charts.count() >= 3
    for i in range(charts.count()):
        chart = charts.nth(i)
        marks = chart.locator("rect, polyline, circle, line").count()
        assert marks > 0, f"chart {chart.get_attribute('aria-label')} is empty"


@pytest.mark.parametrize(
    ("name", "task", "sections"),
    [
        ("iris", "classification", {"problem": {"goal": {"accuracy": 0.8}}}),
        ("breast_cancer", "classification", {}),
        ("diabetes", "regression", {"problem": {"goal": {"r2": 0.3}}}),
        (
            "wine",
            "classification",
            {"tuning": {"method": "grid", "space": {"training.learning_rate": [0.001, 0.003, 0.01]}}},
        ),
    ],
)
def test_the_report_of_a_run(tmp_path, name, task, sections):
    result = Pipeline.from_dict(tiny_config(name, task, **sections)).run(tmp_path / "runs")
    report = result.folder / "report.html"
    html = report.read_text()
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    with browser_page() as (page, errors):
        page.goto(report.as_uri())
        _check(page, errors)
        if "tuning" in sections:
            assert page.get_by_role("heading", name="Tuning").count() == 1
        if task == "classification":
            assert page.get_by_text("ROC curve (test)").count() == 1
        else:
            assert page.get_by_text("Predicted against actual (test)").count() == 1
        screenshot(page, f"report-{name}")


def test_a_10000_row_test_set_gives_a_small_fast_page(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40_000, 6)), columns=[f"x{i}" for i in range(6)])
    frame["y"] = frame.x0 * 2 + frame.x1 - frame.x2 * frame.x3 + rng.normal(size=len(frame))
    frame.to_parquet(tmp_path / "big.parquet")
    config = {
        "name": "big",
        "problem": {"task": "regression", "target": "y"},
        "data": {"source": str(tmp_path / "big.parquet"), "split": {"validation": 0.1, "test": 0.25}},
        "training": {"epochs": 2, "early_stopping": 0},
    }
    result = Pipeline.from_dict(config).run(tmp_path / "runs")
    import json

    assert json.loads((result.folder / "profile.json").read_text())["splits"]["test"] == 10_000
    report = result.folder / "report.html"
    assert report.stat().st_size < 5 * 1024 * 1024
    with browser_page() as (page, errors):
        started = time.perf_counter()
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        rendered = time.perf_counter() - started
        _check(page, errors)
        screenshot(page, "report-10000-test-rows")
    assert rendered < 2.0
