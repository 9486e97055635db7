"""What the CLI shows a person: progress while training, the verdict table at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from dlpipe.tune.output import TrialRow

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class ProgressReporter:
    """A progress bar over epochs on a terminal; a line every tenth of the epochs elsewhere (CI logs)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task = None
        self.live: Live | None = None
        self.reported: set[int] = set()  # finished trials already printed (non-terminal output)

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

    def trials(self, rows: list[TrialRow], total: int, metric: str) -> None:
        """A live table of trials on a terminal (best so far, running, pruned); a line per finished
        trial elsewhere."""
        if self.quiet:
            return
        if console.is_terminal:
            if self.live is None:
                self.live = Live(console=console, refresh_per_second=4, transient=False)
                self.live.start()
            self.live.update(trials_table(rows, total, metric))
            return
        best = _best(rows, metric)
        for row in sorted(rows, key=lambda r: r.number):
            if row.state in ("running", "waiting") or row.number in self.reported:
                continue
            self.reported.add(row.number)
            value = "" if row.value is None else f"{metric} {row.value:.4f}"
            console.print(
                escape(
                    f"  trial {row.number} {row.state:<8} {value}  {row.epochs} epochs  {_params(row.params)}"
                    + (f"  (best {best.value:.4f}, trial {best.number})" if best is not None else "")
                ),
                soft_wrap=True,
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.live is not None:
            self.live.stop()
            self.live = None


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
        kept = f"the weights of epoch {metrics['best_epoch']}"
        if metrics["best_epoch"] == 0:  # the linear candidate validated better than every epoch
            kept = "the ridge fit of the linear path alone (epoch 0), which validated best"
        out.print(f"trained {metrics['epochs_run']} epochs; kept {kept}")
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


SHOWN_TRIALS = 12


def trials_table(rows: list[TrialRow], total: int, metric: str) -> Table:
    """The last trials, with a title line of counts and the best value so far."""
    counts = {s: sum(r.state == s for r in rows) for s in ("complete", "pruned", "fail", "running", "repeat")}
    best = _best(rows, metric)
    title = f"trials {counts['complete'] + counts['pruned']}/{total}"
    if best is not None:
        title += f" · best {metric} {best.value:.4f} (trial {best.number})"
    title += f" · running {counts['running']} · pruned {counts['pruned']}"
    if counts["repeat"]:
        title += f" · repeats {counts['repeat']} (not trained again)"
    if counts["fail"]:
        title += f" · failed {counts['fail']}"
    table = Table(title=title, title_justify="left")
    for column in ("trial", "state", metric, "epochs", "seconds", "parameters"):
        table.add_column(column, justify="left" if column in ("state", "parameters") else "right")
    style = {"complete": "", "pruned": "dim", "repeat": "dim", "fail": "red", "running": "cyan"}
    for row in sorted(rows, key=lambda r: r.number)[-SHOWN_TRIALS:]:
        mark = " *" if best is not None and row.number == best.number else ""
        table.add_row(
            f"{row.number}{mark}",
            row.state,
            "" if row.value is None else f"{row.value:.4f}",
            str(row.epochs),
            "" if row.seconds is None else f"{row.seconds:.1f}",
            escape(_params(row.params)),
            style=style.get(row.state, ""),
        )
    return table


def _best(rows: list[TrialRow], metric: str) -> TrialRow | None:
    from dlpipe.metrics import get
    from dlpipe.tune.output import best_row

    return best_row(rows, get(metric))


def _params(params: dict[str, Any]) -> str:
    """`learning_rate=0.0012 dropout=0.31`: the last part of each path, numbers to 4 figures."""
    return " ".join(
        f"{k.rsplit('.', 1)[-1]}={v:.4g}" if isinstance(v, float) else f"{k.rsplit('.', 1)[-1]}={v}"
        for k, v in params.items()
    )


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def error(message: str) -> None:
    console.print(f"[bold red]error[/]: {escape(message)}", soft_wrap=True)
