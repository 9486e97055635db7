"""The monitoring report on the terminal: alerts first, then features, predictions, performance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from rich.table import Table


def _number(value: Any, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def print_report(report: dict[str, Any]) -> None:
    from dlpipe.console import out

    windows = report["windows"]
    if not windows:
        out.print(escape(f"{report['model']}: no logged predictions in {report['store']}"))
        return
    first = datetime.fromtimestamp(windows[0]["start"], UTC).strftime("%Y-%m-%d %H:%M")
    last = datetime.fromtimestamp(windows[-1]["end"], UTC).strftime("%Y-%m-%d %H:%M")
    out.print(
        escape(
            f"{report['model']} (version {report['version']}): {report['rows']} predictions from {first} to "
            f"{last} UTC, {len(windows)} window{'s' if len(windows) > 1 else ''} of {report['window']} rows; "
            "the latest:"
        ),
        soft_wrap=True,
    )
    table = Table(box=None, pad_edge=False)
    table.add_column("feature", overflow="fold", min_width=12)
    for header in ("method", "score", "threshold", "drift", "psi", "missing", "outside"):
        table.add_column(header, no_wrap=True)
    for name, feature in report["features"].items():
        quality = report["quality"][name]
        outside = quality.get("out_of_range", quality.get("unseen"))
        table.add_row(
            escape(name),
            feature.get("method") or "-",
            _number(feature.get("score")),
            _number(feature.get("threshold"), 2),
            "[red]drift[/]" if feature["drift"] else "",
            _number(feature.get("psi"), 3),
            f"{quality['missing']:.1%}",
            "" if outside is None else f"{outside:.1%}",
        )
    out.print(table)
    for name, result in report["prediction"].items():
        if result.get("method"):
            flag = "  [red]drift[/]" if result["drift"] else ""
            out.print(f"  {escape(name)}: {result['method']} {result['score']:.4f}{flag}")
    performance = report["performance"]
    metric = report["metric"]
    live = performance.get("metrics", {}).get(metric)
    test = report["test"].get(metric)
    line = f"  {metric}: test {_number(test)}"
    line += f", live {_number(live)} on {performance['labelled']} labels ({performance['coverage']:.0%})"
    if metric in performance.get("estimated", {}):
        line += f", estimated without labels {performance['estimated'][metric]:.4f}"
    out.print(escape(line), soft_wrap=True)
    if report["alerts"]:
        for alert in report["alerts"]:
            out.print(f"[red]ALERT[/] {alert['kind']}: {escape(alert['message'])}", soft_wrap=True)
    else:
        out.print("[green]healthy[/]: no alert")
