"""The page `dlpipe runs compare --html` writes: runs side by side in the style of report.html (inline
SVG, no script, works offline): which run is best, the runs, their goals and metrics with the
better value marked, the config keys that differ, and overlaid learning curves (one colour a run)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from dlpipe.plots import STYLE, fmt, line_chart
from dlpipe.report.sections import PALETTE, card
from dlpipe.rundir import write_text
from dlpipe.runs import Run, config_diff, curves, label, metric_rows, shown

EXTRA_STYLE = ".best{font-weight:700;color:#2e9e5b}.wide{grid-column:1/-1}"


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _key(index: int) -> str:
    return f'<span style="color:{_colour(index)}">■</span> {label(index)}'


def _header(runs: list[Run]) -> str:
    return "<tr><th></th>" + "".join(f"<th>{_key(i)}</th>" for i in range(len(runs))) + "</tr>"


def _runs_table(runs: list[Run]) -> str:
    rows = []
    for i, r in enumerate(runs):
        report = r.folder / "report.html"
        link = f'<a href="{escape(report.resolve().as_uri())}">report</a>' if report.exists() else ""
        verdict = {None: "", True: "pass", False: "FAIL"}[r.passed]
        epochs = r.metrics.get("epochs_run")
        cells = [
            escape(f"{r.name}/{r.run_id}"),
            r.started.strftime("%Y-%m-%d %H:%M"),
            r.status,
            verdict,
            "" if epochs is None else f"{epochs} (kept {r.metrics.get('best_epoch')})",
            fmt(r.seconds, 1),
            "yes" if r.tuned else "",
            link,
        ]
        rows.append(f"<tr><td>{_key(i)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("", "run", "started", "status", "goal", "epochs", "seconds", "tuned", ""))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _metrics_table(runs: list[Run]) -> str:
    body = ""
    for row in metric_rows(runs):
        cells = "".join(
            f'<td class="n{" best" if i in row.best else ""}">{fmt(v)}{" ★" if i in row.best else ""}</td>'
            for i, v in enumerate(row.values)
        )
        body += f"<tr><td>{escape(row.split)} {escape(row.name)}</td>{cells}</tr>"
    goals = dict.fromkeys(c["metric"] for r in runs for c in r.metrics.get("goal", {}).get("checks", []))
    for name in goals:
        cells = ""
        for r in runs:
            check = next((c for c in r.metrics["goal"].get("checks", []) if c["metric"] == name), None)
            text = "" if check is None else f"{check['direction']} {check['goal']:g}: "
            text += "" if check is None else "pass" if check["passed"] else "FAIL"
            cells += f"<td>{escape(text)}</td>"
        body += f"<tr><td>goal {escape(name)} (test)</td>{cells}</tr>"
    return f"<table>{_header(runs)}{body}</table><p class='muted'>★ the better value in the metric's direction</p>"


def _diff_table(runs: list[Run]) -> str:
    diff = config_diff([r.config for r in runs])
    if not diff:
        return "<p>the resolved configs are the same</p>"
    body = "".join(
        f"<tr><td>{escape(key)}</td>" + "".join(f"<td>{escape(shown(v))}</td>" for v in values) + "</tr>"
        for key, values in diff
    )
    return f"<table>{_header(runs)}{body}</table>"


def _curves(runs: list[Run]) -> str:
    per_run = [curves(r) for r in runs]
    loss = line_chart(
        {label(i): (c["validation_loss"], _colour(i)) for i, c in enumerate(per_run)},
        "validation loss per epoch",
        x_name="epoch",
    )
    metric = line_chart(
        {label(i): (c["validation"], _colour(i)) for i, c in enumerate(per_run)},
        "validation metric per epoch",
        x_name="epoch",
    )
    names = ", ".join(dict.fromkeys(r.metric or "metric" for r in runs))
    return f"<h2>Validation loss per epoch</h2>{loss}<h2>Validation {escape(names)} per epoch</h2>{metric}"


def _verdict(runs: list[Run]) -> str:
    """Which run scores best on the test split in the problem's metric (when they share one)."""
    metrics = {r.metric for r in runs}
    if len(metrics) != 1 or None in metrics:
        return card("Runs of different metrics: compare them by their own goals", "")
    (metric,) = metrics
    row = next((m for m in metric_rows(runs) if m.split == "test" and m.name == metric), None)
    if row is None or not row.best:
        return card(f"No run is better on test {metric}", "")
    best = ", ".join(label(i) for i in row.best)
    return f'<div class="card healthy"><h2>{escape(f"Best on test {metric}: {best}")}</h2></div>'


def render_compare(runs: list[Run]) -> str:
    title = "Runs compared: " + ", ".join(f"{label(i)} {r.run_id}" for i, r in enumerate(runs))
    cards = [
        f'<div class="card wide"><h2>Runs</h2>{_runs_table(runs)}</div>',
        card("Metrics and goals", _metrics_table(runs)),
        card("Config: the keys that differ", _diff_table(runs)),
        f'<div class="card wide"><h2>Learning curves</h2>{_curves(runs)}</div>',
    ]
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}{EXTRA_STYLE}</style></head><body><h1>{escape(title)}</h1>{_verdict(runs)}"
        f"<div class='grid'>{''.join(cards)}</div></body></html>"
    )


def write_compare(runs: list[Run], path: Path) -> Path:
    """The comparison page, written beside and renamed: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, render_compare(runs))
    return path
