"""The dashboard in a real browser: served at /dashboard and written by `dlpipe monitor --html`;
no console errors, every chart has content, screenshots kept under test-artifacts/."""

from __future__ import annotations

import time

import httpx
import pytest
from sklearn.datasets import load_wine

from browser import browser_page, screenshot
from conftest import dlpipe
from dlpipe.monitor.store import Store
from dlpipe.pipeline import Pipeline
from loopback import running, wine_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboard")
    store = f"sqlite:///{folder / 'monitor.db'}"
    result = Pipeline.from_dict(wine_config(epochs=10)).run(folder / "runs")
    frame = load_wine(as_frame=True).frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    with running(result.model_folder, store=store) as url:
        ids = []
        for _ in range(3):
            for start in range(0, len(frame), 20):
                rows = frame.iloc[start : start + 20]
                instances = rows.drop(columns=["target"]).to_dict(orient="records")
                ids += httpx.post(f"{url}/predict", json={"instances": instances}).json()["ids"]
        labels = [f"class_{t}" for t in frame["target"]] * 3
        httpx.post(f"{url}/feedback", json=[{"id": i, "label": y} for i, y in zip(ids, labels, strict=True)])
        deadline = time.time() + 30
        while Store(store).count("wine") < len(ids):
            assert time.time() < deadline
            time.sleep(0.05)
        yield url, result.model_folder, store, folder


def _check(page, errors) -> None:
    assert errors == []
    charts = page.locator("svg")
    assert charts.count() >= 6 + 13  # six over time, the drift scores, a histogram per feature
    for i in range(charts.count()):
        chart = charts.nth(i)
        marks = chart.locator("rect, polyline, circle").count()
        assert marks > 0, f"chart {chart.get_attribute('aria-label')} is empty"
        assert chart.bounding_box()["height"] > 20
    assert page.get_by_text("Healthy").count() + page.get_by_text("active alert").count() >= 1


def test_the_served_dashboard_renders_with_content(served):
    url, _, _, _ = served
    with browser_page() as (page, errors):
        started = time.perf_counter()
        page.goto(f"{url}/dashboard?window=100")
        _check(page, errors)
        assert "wine" in page.title() and time.perf_counter() - started < 10
        screenshot(page, "dashboard-served")


def test_the_html_file_works_offline(served):
    _, model, store, folder = served
    done = dlpipe("monitor", str(model), "--store", store, "--window", "100", "--html", str(folder / "d.html"))
    assert done.returncode in (0, 4), done.stderr
    html = (folder / "d.html").read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in html
    with browser_page() as (page, errors):
        page.goto((folder / "d.html").as_uri())
        _check(page, errors)
        screenshot(page, "dashboard-file")


def test_dashboard_errors_are_4xx(served, tmp_path):
    url, _, _, _ = served
    assert httpx.get(f"{url}/dashboard?window=3").status_code == 400
    assert httpx.get(f"{url}/dashboard?window=abc").status_code == 400
