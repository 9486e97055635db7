"""A real browser for the tests: Debian's chromium driven by Playwright (never a downloaded one).

Where chromium is not installed the browser tests skip, unless DLPIPE_REQUIRE_BROWSER=1 (CI sets
it after installing chromium), which makes them fail instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def browser_page():
    """A page of a fresh headless chromium; yields (page, console errors seen so far)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("DLPIPE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"no chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page, errors
        finally:
            context.close()
            browser.close()
            shutil.rmtree(tempfile.gettempdir() + "/playwright-artifacts", ignore_errors=True)


def screenshot(page, name: str) -> Path:
    """Keep a full-page screenshot under test-artifacts/ for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def check_report(report: Path, name: str) -> dict:
    """Open a run's report.html: no console error, the verdict first and on the first screen, every
    chart with marks, every thumbnail decoded; keeps a screenshot as test-artifacts/NAME.png.

    Returns the page's text and headings, and the browser's own time from navigation to the load
    event (`load_ms`), for the caller's checks.
    """
    html = report.read_text()
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    with browser_page() as (page, errors):
        page.goto(report.as_uri(), wait_until="load")
        timing = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
        assert errors == []
        verdict = page.locator("h2").first
        assert verdict.inner_text().startswith(("PASS", "FAIL", "no goal")), verdict.inner_text()
        assert verdict.bounding_box()["y"] < 200  # seen without scrolling
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
        charts = page.locator("svg")
        assert charts.count() >= 3
        for i in range(charts.count()):
            chart = charts.nth(i)
            marks = chart.locator("rect, polyline, circle, line").count()
            assert marks > 0, f"chart {chart.get_attribute('aria-label')} is empty"
        thumbs = page.locator("img.thumb")
        for i in range(thumbs.count()):
            assert thumbs.nth(i).evaluate("img => img.complete && img.naturalWidth > 0"), f"thumbnail {i} not decoded"
        screenshot(page, name)
        return {
            "text": page.locator("body").inner_text(),
            "headings": page.locator("h2").all_inner_texts(),
            "load_ms": timing["loadEventEnd"] - timing["startTime"],
        }
