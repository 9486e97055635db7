"""`report.html`: one self-contained page per run (inline SVG, no script, no network), the verdict
first, then the problem, the data, training, the metrics and their plots, tuning, the model and
the environment. Written from the run folder's own files, so it can be rebuilt for any run."""

from __future__ import annotations

import csv
import io
import json
from html import escape
from pathlib import Path
from typing import Any

import yaml

from dlpipe.plots import STYLE
from dlpipe.report.examples import EXAMPLES
from dlpipe.report.sections import (
    card,
    classification_plots,
    confusion,
    data_profile,
    examples_section,
    learning_curves,
    metrics_table,
    model_section,
    parallel_trials,
    regression_plots,
    table,
    tuning_section,
    verdict,
)
from dlpipe.rundir import write_text

REPORT = "report.html"
KEYS = ("task", "target", "metric")
EXTRA_STYLE = (
    ".thumb{height:64px;width:auto;image-rendering:pixelated;border:1px solid #dde1e7;vertical-align:middle}"
    ".value{display:inline-block;margin-right:10px}.card{min-width:0}.scroll{overflow-x:auto}"
    ".matrix td,.matrix th{padding:2px 5px;font-size:12px}.examples td:last-child{width:60%}"
)


def _read(folder: Path, name: str) -> Any:
    path = folder / name
    if not path.exists():
        return None
    return json.loads(path.read_text()) if name.endswith(".json") else path.read_text()


def render(folder: Path) -> str:
    """The whole page, from the run folder's files alone."""
    metrics = _read(folder, "metrics.json") or {}
    profile = _read(folder, "profile.json") or {}
    history = [json.loads(line) for line in (_read(folder, "history.jsonl") or "").splitlines() if line.strip()]
    pipeline = yaml.safe_load(_read(folder, "pipeline.yaml") or "{}") or {}
    manifest = _read(folder / "model", "model.json") or {}
    problem = pipeline.get("problem", {})
    title = f"{pipeline.get('name', folder.name)} · run {folder.name}"
    goal = json.dumps(problem.get("goal", {}))
    cards = [
        card("Problem", table(["task", "target", "metric", "goal"], [[problem.get(k) for k in KEYS] + [goal]])),
        card("Metrics", metrics_table(metrics)),
        card("Learning curves", learning_curves(history, metrics.get("best_epoch"))),
    ]
    details = metrics.get("details", {}).get("test", {})
    if "confusion_matrix" in details:
        cards.append(card("Confusion matrix and per-class figures (test)", confusion(details)))
        cards += [card(t, c) for t, c in classification_plots(details.get("curves", {}))]
    cards += [card(t, c) for t, c in regression_plots(details)]
    examples = _read(folder, EXAMPLES)
    if examples:
        name = "Largest errors (test)" if examples.get("task") == "regression" else "Misclassified examples (test)"
        cards.append(card(name, examples_section(examples)))
    cards += _tuning_cards(folder, pipeline)
    files = [
        (name, (folder / "model" / name).stat().st_size)
        for name in [*manifest.get("files", {}), "model.json"]
        if (folder / "model" / name).is_file()
    ]
    stages = [[k, f"{v:.2f} s"] for k, v in (metrics.get("seconds") or {}).items()]
    versions = [[k, v] for k, v in (manifest.get("versions") or {}).items()]
    cards += [
        card("Model", model_section(metrics.get("model") or {}, files)),
        card("Time per stage", table(["stage", "seconds"], stages)),
        card("Environment", table(["library", "version"], versions)),
    ]
    profile_html = card("Data", data_profile(profile)) if profile.get("columns") else ""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}{EXTRA_STYLE}</style></head><body><h1>{escape(title)}</h1>{verdict(metrics)}"
        f"<div class='grid'>{''.join(cards)}</div>{profile_html}</body></html>"
    )


def _tuning_cards(folder: Path, pipeline: dict[str, Any]) -> list[str]:
    """Best value per trial and importances, and the trials in parallel coordinates."""
    summary = _read(folder / "tuning", "summary.json")
    if not summary:
        return []
    cards = [card("Tuning", tuning_section(summary))]
    trials = list(csv.DictReader(io.StringIO(_read(folder / "tuning", "trials.csv") or "")))
    space = (pipeline.get("tuning") or {}).get("space") or {}
    plot = parallel_trials(trials, space, summary) if space else ""
    if plot:
        cards.append(card("Trials in parallel coordinates (settings and result)", plot))
    return cards


def write_report(folder: Path) -> Path:
    """report.html in the run folder, written beside and renamed: never half-written."""
    path = folder / REPORT
    write_text(path, render(folder))
    return path
