"""What the CLI shows a person: progress while training, the verdict table at the end."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class ProgressReporter:
    """A progress bar over epochs on a terminal; a line every tenth of the epochs elsewhere (CI logs)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task = None

    def stage(self, name: str) -> None:
        self.close()
        if not self.quiet:
            console.print(f"[bold]{name}[/bold]")

    def info(self, text: str) -> None:
        if not self.quiet:
            console.print(f"  {escape(text)}", soft_wrap=True)

    def epoch(self, record: dict[str, Any], epochs: int) -> None:
        if self.quiet:
            return
        text = f"loss {record['train_loss']:.4f}  validation {record['validation']:.4f}"
        if console.is_terminal:
            if self.progress is None:
                self.progress = Progress(
                    TextColumn("epoch"),
                    MofNCompleteColumn(),
                    BarColumn(),
                    TextColumn("{task.fields[text]}"),
                    TimeElapsedColumn(),
                    TextColumn("eta"),
                    TimeRemainingColumn(),
                    console=console,
                    transient=False,
                )
                self.progress.start()
                self.task = self.progress.add_task("train", total=epochs, completed=record["epoch"] - 1, text="")
            self.progress.update(self.task, completed=record["epoch"], text=text)
        elif record["epoch"] == 1 or record["epoch"] % max(1, epochs // 10) == 0:
            console.print(f"  epoch {record['epoch']}/{epochs}  {text}{'  *' if record['best'] else ''}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def verdict(metrics: dict[str, Any]) -> None:
    """The goal checks as a table, then one plain line: PASS or FAIL."""
    goal = metrics["goal"]
    baseline = metrics.get("baseline", {})
    table = Table(title="test set", title_justify="left")
    for column in ("metric", "goal", "achieved", "baseline", "result"):
        table.add_column(column, justify="left" if column in ("metric", "result") else "right")
    shown = set()
    for check in goal["checks"]:
        name = check["metric"]
        shown.add(name)
        table.add_row(
            name,
            f"{check['direction']} {check['goal']:g}",
            f"{check['achieved']:.4f}",
            _fmt(baseline.get("test", {}).get(name)),
            "[green]pass[/]" if check["passed"] else "[red]fail[/]",
        )
    for name, value in metrics["test"].items():
        if name not in shown:
            table.add_row(name, "", f"{value:.4f}", _fmt(baseline.get("test", {}).get(name)), "")
    out.print(table)
    if "epochs_run" in metrics:
        out.print(f"trained {metrics['epochs_run']} epochs; kept the weights of epoch {metrics['best_epoch']}")
    if baseline:
        out.print(f"baseline: {baseline['name']} fitted on the same training split")
    if metrics.get("unscored_test_rows"):
        out.print(
            f"[yellow]note[/]: {metrics['unscored_test_rows']} test rows have classes the training split never "
            "saw; no model can predict them, and they are not in these scores"
        )
    if not goal["checks"]:
        out.print("[yellow]NO GOAL SET[/]: add problem.goal to check the model against success criteria")
    elif goal["passed"]:
        out.print("[bold green]PASS[/]: the model meets the goal on the test set")
    else:
        failed = ", ".join(c["metric"] for c in goal["checks"] if not c["passed"])
        out.print(f"[bold red]FAIL[/]: the model misses the goal on the test set ({escape(failed)})")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def error(message: str) -> None:
    console.print(f"[bold red]error[/]: {escape(message)}", soft_wrap=True)
