"""The run commands: `dlpipe runs list` and `dlpipe runs compare` (the logic is in `dlpipe.runs`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from dlpipe.runs import Run


def cmd_runs_list(args: argparse.Namespace) -> int:
    """A table of the runs under --run-dir, newest first (or JSON lines with --json)."""
    import json

    from rich.markup import escape
    from rich.table import Table

    from dlpipe.console import out
    from dlpipe.runs import list_runs

    runs = list_runs(args.run_dir)
    if args.json:
        print(json.dumps([r.summary() for r in runs], indent=2))
        return 0
    if not runs:
        out.print(escape(f"no runs in {args.run_dir}"))
        return 0
    table = Table(box=None)
    for column in ("name", "run id", "started", "metric", "validation", "test", "goal", "tuned", "status"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("validation", "test") else "left")
    for run in runs:
        s = run.summary()
        table.add_row(
            escape(s["name"]),
            escape(s["run_id"]),
            run.started.strftime("%Y-%m-%d %H:%M"),
            escape(s["metric"] or ""),
            _number(s["validation"]),
            _number(s["test"]),
            _verdict(s["passed"]),
            "yes" if s["tuned"] else "",
            s["status"] if s["status"] == "complete" else f"[yellow]{s['status']}[/]",
        )
    _print_wide(table)
    return 0


def _print_wide(table: Table) -> None:
    """On a terminal as wide as it is; piped or in a log, whole lines (no wrapping at 80 columns)."""
    from rich.console import Console

    from dlpipe.console import out

    (out if out.is_terminal else Console(highlight=False, width=250)).print(table)


def cmd_runs_compare(args: argparse.Namespace) -> int:
    """Two or more runs side by side: config diff, metrics (the better marked), goals, epochs, time."""
    from rich.markup import escape
    from rich.table import Table

    from dlpipe.console import out
    from dlpipe.runs import MISSING, config_diff, find_run, label, load_run, metric_rows, shown

    if len(args.runs) < 2:
        from dlpipe.errors import ConfigError

        raise ConfigError("compare needs two runs or more", where="dlpipe runs compare", fix="name another run")
    runs = [load_run(find_run(ref, args.run_dir)) for ref in args.runs]
    table = Table("", *(label(i) for i in range(len(runs))), title="runs compared", title_justify="left")
    table.add_row("run", *(escape(f"{r.name}/{r.run_id}") for r in runs))
    table.add_row("status", *(r.status for r in runs))
    table.add_row("goal", *(_verdict(r.passed) for r in runs))
    for name, values in _goal_rows(runs):
        table.add_row(escape(f"  goal {name}"), *values)
    table.add_row("epochs (kept)", *(_epochs(r) for r in runs))
    table.add_row("seconds", *(_number(r.seconds, 1) for r in runs))
    table.add_section()
    for row in metric_rows(runs):
        cells = [_number(v) + (" *" if i in row.best else "") for i, v in enumerate(row.values)]
        table.add_row(f"{row.split} {row.name}", *(f"[bold green]{c}[/]" if "*" in c else c for c in cells))
    diff = config_diff([r.config for r in runs])
    table.add_section()
    for key, values in diff:
        table.add_row(escape(key), *("[dim]absent[/]" if v is MISSING else escape(shown(v)) for v in values))
    if not diff:
        table.add_row("config", *("same" for _ in runs))
    _print_wide(table)
    out.print("* the better value in the metric's direction", style="dim")
    if args.html:
        from pathlib import Path

        from dlpipe.report.compare import write_compare

        path = write_compare(runs, Path(args.html))
        out.print(escape(f"wrote {path}"))
    return 0


def _goal_rows(runs: list[Run]) -> list[tuple[str, list[str]]]:
    """One row per goal metric: each run's goal and whether it held."""
    names = dict.fromkeys(c["metric"] for r in runs for c in r.metrics.get("goal", {}).get("checks", []))
    rows = []
    for name in names:
        cells = []
        for r in runs:
            check = next((c for c in r.metrics.get("goal", {}).get("checks", []) if c["metric"] == name), None)
            cells.append(
                "" if check is None else f"{check['direction']} {check['goal']:g}: " + _verdict(check["passed"])
            )
        rows.append((name, cells))
    return rows


def _epochs(run: Run) -> str:
    ran, kept = run.metrics.get("epochs_run"), run.metrics.get("best_epoch")
    return "" if ran is None else f"{ran} ({kept})"


def _verdict(passed: bool | None) -> str:
    return "" if passed is None else "[green]pass[/]" if passed else "[red]fail[/]"


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def add_runs_commands(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="list the runs under a run folder; compare runs side by side")
    verbs = runs.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = verbs.add_parser("list", help="runs newest first: metric, goal, tuned, status")
    p.add_argument("--run-dir", default="runs", help="where run folders are (default: runs)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_runs_list)

    p = verbs.add_parser("compare", help="runs side by side: config diff, metrics, goals, curves (--html)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run folder, NAME/RUN_ID under --run-dir, or a run id")
    p.add_argument("--run-dir", default="runs", help="where run folders are (default: runs)")
    p.add_argument("--html", help="also write a self-contained HTML page with overlaid learning curves")
    p.set_defaults(func=cmd_runs_compare)
