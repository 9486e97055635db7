"""The report's sections, each a function from run-folder data to HTML (every value escaped), and
what keeps them small on a large run: tables and plots are capped, never the size of the data."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from dlpipe.plots import BAD, CUR, OK, REF, bars, fmt, line_chart, xy_chart

MATRIX_CLASSES = 25  # a larger matrix is unreadable, and grows with the square of the classes
TABLE_ROWS = 100
THUMBNAIL = re.compile(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/]+=*")  # nothing else becomes an <img>
PALETTE = (CUR, BAD, OK, "#e69f00", "#9b59b6", "#17becf", "#8c564b", "#7f7f7f", "#bcbd22", "#1f77b4")


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def card(title: str, content: str) -> str:
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
    checks = table(["metric", "goal", "achieved", "result"], rows) if rows else ""
    return f'<div class="card {kind}"><h2>{escape(word)}</h2>{checks}</div>'


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
        x_name="epoch",
    )
    metric = epochs[0].get("metric", "metric")
    score = line_chart(
        {f"validation {metric}": ([h.get("validation") for h in epochs], OK)}, "validation metric", x_name="epoch"
    )
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
    return table(["metric", "validation", "test", label], rows)


def confusion(details: dict[str, Any]) -> str:
    """The confusion matrix (the MATRIX_CLASSES classes with most test rows) and the per-class table."""
    classes, matrix = details.get("classes") or [], details.get("confusion_matrix") or []
    if not matrix:
        return ""
    names = [str(c) for c in classes] or [str(i) for i in range(len(matrix))]
    kept = sorted(sorted(range(len(matrix)), key=lambda i: -sum(matrix[i]))[:MATRIX_CLASSES])
    top = max(max(r) for r in matrix) or 1
    head = "".join(f"<th>{escape(names[j])}</th>" for j in kept)
    body = ""
    for i in kept:
        shades = [(matrix[i][j], 0.08 + 0.8 * matrix[i][j] / top) for j in kept]
        cells = "".join(f'<td class="n" style="background:rgba(47,111,223,{a:.2f})">{v}</td>' for v, a in shades)
        body += f"<tr><th>{escape(names[i])}</th>{cells}</tr>"
    note = "rows: true class, columns: predicted"
    if len(kept) < len(matrix):
        note += f"; the {len(kept)} classes with most test rows of {len(matrix)} (metrics.json has all)"
    per_class = [
        [c, fmt(v["precision"], 3), fmt(v["recall"], 3), fmt(v["f1"], 3), v["support"]]
        for c, v in details.get("per_class", {}).items()
    ]
    return (
        f"<p class='muted'>{escape(note)}</p>"
        f"<div class='scroll'><table class='matrix'><tr><th></th>{head}</tr>{body}</table></div>"
        "<h2>Per class</h2>" + capped_table(["class", "precision", "recall", "f1", "support"], per_class)
    )


def capped_table(header: list[str], rows: list[list[Any]]) -> str:
    """A table of at most TABLE_ROWS rows, saying how many more there are."""
    more = len(rows) - TABLE_ROWS
    note = f"<p class='muted'>and {more} more (the run folder's JSON files have them all)</p>" if more > 0 else ""
    return table(header, rows[:TABLE_ROWS]) + note


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
        f"{sizes}</p>{capped_table(['column', 'type', 'why', 'missing'], rows)}{chart}"
        + (table(["dropped", "rows", "split"], lost) if lost else "<p class='muted'>nothing dropped</p>")
    )


def tuning_section(summary: dict[str, Any]) -> str:
    history = summary.get("history", [])
    best = line_chart(
        {"best so far": ([h["best"] for h in history], CUR), "trial": ([h["value"] for h in history], REF)},
        "best value after each trial",
        x_name="trial",
    )
    importances = summary.get("importances", {})
    shares = [(k, v, v) for k, v in importances.items()]
    chart = bars(shares, "parameter importances", (CUR, CUR), legend=None) if importances else ""
    trials = summary.get("trials", {})
    counts = ", ".join(f"{n} {state}" for state, n in trials.items() if n and state != "total")
    line = f"{summary.get('method', '')} search, {trials.get('total', 0)} trials: {counts}"
    top = summary.get("best")
    if top:
        settings = ", ".join(f"{k} {v}" for k, v in top.get("params", {}).items())
        line += f"; best trial {top['trial']}: {summary.get('metric', '')} {fmt(top['value'])} with {settings}"
    return f"<p>{escape(line)}</p>{best}{chart}"


def examples_section(examples: dict[str, Any]) -> str:
    """The worst test rows: what was true, what the model said and how sure it was, and the inputs."""
    rows, regression = examples.get("rows", []), examples.get("task") == "regression"
    if regression:
        header = ["actual", "predicted", "error", "inputs"]
        cells = [[fmt(r["actual"], 4), fmt(r["predicted"], 4), fmt(r["error"], 4)] for r in rows]
        intro = "the test rows with the largest absolute error"
    else:
        header = ["true", "predicted", "p(predicted)", "p(true)", "inputs"]
        cells = [
            [
                escape(str(r["true"])),
                escape(str(r["predicted"])),
                fmt(r["probability"], 3),
                fmt(r["true_probability"], 3),
            ]
            for r in rows
        ]
        wrong, total = examples.get("wrong", 0), examples.get("test_rows", 0)
        intro = f"{wrong} of {total} test rows misclassified; the ones the model was surest of"
        if not rows:
            return f"<p>{escape(intro.split(';')[0])}</p>"
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{c}</td>" for c in row) + f"<td>{_inputs(r['inputs'])}</td></tr>"
        for row, r in zip(cells, rows, strict=True)
    )
    left_out = examples.get("columns_left_out", 0)
    note = f" (the first columns; {left_out} more not shown)" if left_out else ""
    table_html = f"<div class='scroll'><table class='examples'><tr>{head}</tr>{body}</table></div>"
    return f"<p class='muted'>{escape(intro)}{escape(note)}</p>{table_html}"


def _inputs(values: dict[str, dict[str, str]]) -> str:
    """An example's inputs: thumbnails by value (only image data URIs are let through), text escaped."""
    parts = []
    for name, shown in values.items():
        image = shown.get("image", "")
        if THUMBNAIL.fullmatch(image):
            parts.append(f'<img class="thumb" src="{escape(image)}" alt="{escape(name)}" title="{escape(name)}">')
        else:
            parts.append(f"<span class='value'><b>{escape(name)}</b> {escape(shown.get('text', ''))}</span>")
    return " ".join(parts)


def model_section(model: dict[str, Any], files: list[tuple[str, int]]) -> str:
    """Parameters by part, the model folder's files and their size, and the latency per row."""
    counts = model.get("parameters", {})
    shown = [[k, f"{v:,}"] for k, v in counts.items() if v or k == "total"]  # a scaler has none
    parts = table(["part", "parameters"], shown) if counts else ""
    total = sum(size for _, size in files)
    sizes = table(["file", "size"], [*([n, _size(b)] for n, b in files), ["all files", _size(total)]])
    latency = model.get("latency", {})
    timing = ""
    if latency:
        timing = (
            table(
                ["prediction (preprocessing included)", "ms per row"],
                [
                    ["one row at a time", fmt(latency.get("single_row_ms"), 3)],
                    [f"a batch of {latency.get('batch_rows')} rows", fmt(latency.get("batch_row_ms"), 3)],
                ],
            )
            + "<p class='muted'>median of 5 calls in PyTorch when the model was packaged, on this machine</p>"
        )
    return parts + sizes + timing


def _size(count: int) -> str:
    return f"{count / 1024:.1f} KiB" if count < 1024 * 1024 else f"{count / 1024 / 1024:.2f} MiB"


TRIALS_DRAWN = 300  # the best ones: past a few hundred lines a parallel plot is a smear


def parallel_trials(trials: list[dict[str, str]], space: dict[str, Any], summary: dict[str, Any]) -> str:
    """Parallel coordinates of the search: an axis per searched setting and one for the objective,
    a line per finished trial coloured from worst to best; log ranges on log axes, lists by position."""
    from dlpipe.plots import parallel_coordinates

    metric, maximize = summary.get("metric", "value"), summary.get("direction", "maximize") == "maximize"
    done = []
    for t in trials:
        try:
            value = float(t.get("value") or "nan")
        except ValueError:
            continue
        if t.get("state") in ("complete", "pruned") and value == value:
            done.append((value, t))
    if not done:
        return ""
    values = [v for v, _ in done]
    worst, best = (min(values), max(values)) if maximize else (max(values), min(values))
    axes = [_axis(name, dim) for name, dim in space.items()]
    axes.append({"name": metric, "kind": "linear", "low": min(values), "high": max(values)})
    best_trial = str((summary.get("best") or {}).get("trial"))
    lines = []
    for value, t in done:
        share = 1.0 if best == worst else (value - worst) / (best - worst)
        title = f"trial {t['number']} ({t['state']}): {metric} {value:.4g}; " + ", ".join(
            f"{name} {t.get(name, '')}" for name in space
        )
        lines.append(
            {
                "values": [t.get(name) for name in space] + [value],
                "share": share,
                "title": title,
                "best": t["number"] == best_trial,
            }
        )
    lines = sorted(lines, key=lambda line: -line["share"])[:TRIALS_DRAWN]
    return parallel_coordinates(axes, lines, "parallel coordinates of the trials")


def _axis(name: str, dim: Any) -> dict[str, Any]:
    """A searched setting as an axis: a range (log or linear), or a list placed by position."""
    if isinstance(dim, dict):
        for kind in ("log", "float", "int"):
            if kind in dim:
                low, high = dim[kind]
                return {"name": name, "kind": "log" if kind == "log" else "linear", "low": low, "high": high}
    return {"name": name, "kind": "choice", "choices": list(dim) if isinstance(dim, list) else [dim]}
