"""`report.html`: one self-contained page per run (inline SVG, no script, no network), the verdict
first, then the problem, the data, training, the metrics and their plots, tuning, the model and
the environment. Written from the run folder's own files, so it can be rebuilt for any run."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import yaml

from dlpipe.plots import BAD, CUR, OK, REF, STYLE, bars, fmt, line_chart, xy_chart

REPORT = "report.html"
PALETTE = (CUR, BAD, OK, "#e69f00", "#9b59b6", "#17becf", "#8c564b", "#7f7f7f", "#bcbd22", "#1f77b4")


def _read(folder: Path, name: str) -> Any:
    path = folder / name
    if not path.exists():
        return None
    return json.loads(path.read_text()) if name.endswith(".json") else path.read_text()


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _card(title: str, content: str) -> str:
    return f'<div class="card"><h2>{escape(title)}</h2>{content}</div>'


def verdict(metrics: dict[str, Any]) -> str:
    goal = metrics.get("goal", {})
    rows = [
        [c["metric"], f"{c['direction']} {c['goal']}", fmt(c["achieved"]), "pass" if c["passed"] else "FAIL"]
        for c in goal.get("checks", [])
    ]
    passed = goal.get("passed", False)
    word = "PASS: the model meets the goal on the test set" if passed else "FAIL: the model misses the goal"
    if not rows:
        word = "no goal set: the test metrics below are for you to judge"
    kind = "healthy" if passed else "alert" if rows else ""
    table = _table(["metric", "goal", "achieved", "result"], rows) if rows else ""
    return f'<div class="card {kind}"><h2>{escape(word)}</h2>{table}</div>'


def learning_curves(history: list[dict[str, Any]], best_epoch: int | None) -> str:
    epochs = [h for h in history if "epoch" in h]
    if not epochs:
        return "<p>no epochs recorded</p>"
    loss = line_chart(
        {
            "train loss": ([h.get("train_loss") for h in epochs], CUR),
            "validation loss": ([h.get("validation_loss") for h in epochs], BAD),
        },
        "training and validation loss per epoch",
        [best_epoch - 1] if best_epoch else [],
    )
    metric = epochs[0].get("metric", "metric")
    score = line_chart({f"validation {metric}": ([h.get("validation") for h in epochs], OK)}, "validation metric")
    return f"{loss}{score}<p class='muted'>dashed line: the epoch whose weights were kept ({best_epoch})</p>"


def metrics_table(metrics: dict[str, Any]) -> str:
    names = list(metrics.get("test", {}))
    baseline = metrics.get("baseline", {}) or {}
    rows = [
        [
            n,
            fmt(metrics.get("validation", {}).get(n)),
            fmt(metrics["test"].get(n)),
            fmt(baseline.get("test", {}).get(n)),
        ]
        for n in names
    ]
    label = f"baseline ({baseline.get('name', 'linear')})"
    return _table(["metric", "validation", "test", label], rows)


def confusion(details: dict[str, Any]) -> str:
    classes, matrix = details.get("classes") or [], details.get("confusion_matrix") or []
    if not matrix:
        return ""
    top = max(max(r) for r in matrix) or 1
    head = "".join(f"<th>{escape(str(c))}</th>" for c in classes)
    body = ""
    for name, row in zip(classes, matrix, strict=True):
        cells = "".join(
            f'<td class="n" style="background:rgba(47,111,223,{0.08 + 0.8 * v / top:.2f})">{v}</td>' for v in row
        )
        body += f"<tr><th>{escape(str(name))}</th>{cells}</tr>"
    per_class = [
        [c, fmt(v["precision"], 3), fmt(v["recall"], 3), fmt(v["f1"], 3), v["support"]]
        for c, v in details.get("per_class", {}).items()
    ]
    return (
        f"<p class='muted'>rows: true class, columns: predicted</p><table><tr><th></th>{head}</tr>{body}</table>"
        + _table(["class", "precision", "recall", "f1", "support"], per_class)
    )


def classification_plots(curves: dict[str, Any]) -> list[tuple[str, str]]:
    colors = dict(zip(curves.get("roc", {}), PALETTE, strict=False))
    roc = {f"{c}": (v["fpr"], v["tpr"], colors[c]) for c, v in curves.get("roc", {}).items()}
    pr = {f"{c}": (v["recall"], v["precision"], colors[c]) for c, v in curves.get("pr", {}).items()}
    calibration = curves.get("calibration", [])
    cal = {"model": ([b["predicted"] for b in calibration], [b["observed"] for b in calibration], CUR)}
    unit = (0.0, 1.0, 0.0, 1.0)
    return [
        ("ROC curve (test)", xy_chart(roc, "ROC curve", diagonal=True, bounds=unit)),
        ("Precision-recall (test)", xy_chart(pr, "precision-recall curve", bounds=unit)),
        ("Calibration (test): confidence against accuracy", xy_chart(cal, "calibration", diagonal=True, bounds=unit)),
    ]


def regression_plots(details: dict[str, Any]) -> list[tuple[str, str]]:
    scatter = details.get("scatter", {})
    actual, predicted = scatter.get("actual", []), scatter.get("predicted", [])
    if not actual:
        return []
    low, high = min(actual + predicted), max(actual + predicted)
    points = xy_chart(
        {"rows": (actual, predicted, CUR)},
        "predicted against actual",
        diagonal=True,
        dots=True,
        bounds=(low, high, low, high),
    )
    residuals = [p - a for a, p in zip(actual, predicted, strict=True)]
    residual = xy_chart({"residual": (predicted, residuals, BAD)}, "residuals", dots=True)
    return [("Predicted against actual (test)", points), ("Residuals against predicted (test)", residual)]


def data_profile(profile: dict[str, Any]) -> str:
    rows = [
        [n, c["type"], c.get("reason", ""), f"{c.get('missing_rate', 0):.1%}"] for n, c in profile["columns"].items()
    ]
    balance = profile.get("target", {}).get("class_balance")
    chart = ""
    if balance:
        total = sum(balance.values()) or 1
        shares = [(str(k), v / total, v / total) for k, v in balance.items()]
        chart = "<h2>Class balance (training split)</h2>" + bars(shares, "class balance", (CUR, CUR), legend=None)
    dropped = profile.get("dropped", {})
    lost = [[d.get("reason", ""), d.get("count", ""), d.get("split", "")] for d in dropped.get("rows", [])]
    lost += [[f"column {d['name']}: {d['reason']}", "", ""] for d in dropped.get("columns", [])]
    splits = profile.get("splits", {})
    sizes = ", ".join(f"{k} {v}" for k, v in splits.items() if k != "method")
    return (
        f"<p>{profile.get('rows')} rows from {escape(str(profile.get('source')))}; split ({splits.get('method')}): "
        f"{sizes}</p>{_table(['column', 'type', 'why', 'missing'], rows)}{chart}"
        + (_table(["dropped", "rows", "split"], lost) if lost else "<p class='muted'>nothing dropped</p>")
    )


def tuning_section(summary: dict[str, Any]) -> str:
    history = summary.get("history", [])
    best = line_chart(
        {"best so far": ([h["best"] for h in history], CUR), "trial": ([h["value"] for h in history], REF)},
        "best value after each trial",
    )
    importances = summary.get("importances", {})
    shares = [(k, v, v) for k, v in importances.items()]
    chart = bars(shares, "parameter importances", (CUR, CUR), legend=None) if importances else ""
    trials = summary.get("trials", {})
    return f"<p>{escape(summary.get('method', ''))} search: {escape(json.dumps(trials))}</p>{best}{chart}"


def render(folder: Path) -> str:
    metrics = _read(folder, "metrics.json") or {}
    profile = _read(folder, "profile.json") or {}
    history = [json.loads(line) for line in (_read(folder, "history.jsonl") or "").splitlines() if line.strip()]
    pipeline = yaml.safe_load(_read(folder, "pipeline.yaml") or "{}") or {}
    manifest = _read(folder / "model", "model.json") or {}
    problem = pipeline.get("problem", {})
    title = f"{pipeline.get('name', folder.name)} · run {folder.name}"
    cards = [
        _card(
            "Problem",
            _table(
                ["task", "target", "metric", "goal"],
                [
                    [
                        problem.get("task"),
                        problem.get("target"),
                        problem.get("metric"),
                        json.dumps(problem.get("goal", {})),
                    ]
                ],
            ),
        ),
        _card("Metrics", metrics_table(metrics)),
        _card("Learning curves", learning_curves(history, metrics.get("best_epoch"))),
    ]
    details = metrics.get("details", {}).get("test", {})
    if "confusion_matrix" in details:
        cards.append(_card("Confusion matrix and per-class figures (test)", confusion(details)))
        cards += [_card(t, c) for t, c in classification_plots(details.get("curves", {}))]
    cards += [_card(t, c) for t, c in regression_plots(details)]
    summary = _read(folder / "tuning", "summary.json")
    if summary:
        cards.append(_card("Tuning", tuning_section(summary)))
    sizes = [
        [name, f"{(folder / 'model' / name).stat().st_size / 1024:.1f} KiB"]
        for name in manifest.get("files", {})
        if (folder / "model" / name).exists()
    ]
    stages = [[k, f"{v:.2f} s"] for k, v in (metrics.get("seconds") or {}).items()]
    versions = [[k, v] for k, v in (manifest.get("versions") or {}).items()]
    cards += [
        _card("Model files", _table(["file", "size"], sizes)),
        _card("Time per stage", _table(["stage", "seconds"], stages)),
        _card("Environment", _table(["library", "version"], versions)),
    ]
    profile_html = _card("Data", data_profile(profile)) if profile.get("columns") else ""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{verdict(metrics)}"
        f"<div class='grid'>{''.join(cards)}</div>{profile_html}</body></html>"
    )


def write_report(folder: Path) -> Path:
    """report.html in the run folder, written beside and renamed: never half-written."""
    path = folder / REPORT
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(folder), encoding="utf-8")
    tmp.replace(path)
    return path
