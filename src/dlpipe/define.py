"""Problem definition: `dlpipe init` reads the data and writes a commented pipeline file.

It infers the task from the target, each column's type (with the reason), the metric, and a goal
just above a trivial baseline, which the user is told to raise.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from dlpipe.collect import collect
from dlpipe.errors import DataError
from dlpipe.features import infer_column
from dlpipe.features.numeric import numeric_share, to_numbers
from dlpipe.metrics import default_metric
from dlpipe.prepare.target import check_target, clean_labels, resolve_target
from dlpipe.spec import FileSource, parse_yaml, validate_spec

REGRESSION_MIN_DISTINCT = 20
GENERIC_FOLDERS = {"data", "images", "audio", "text", "train", "dataset", "files", "raw"}


def infer_task(target: pd.Series) -> tuple[str, str]:
    """classification or regression, and why."""
    present = target.dropna()
    distinct = present.nunique()
    if numeric_share(present) >= 0.95:
        values = to_numbers(present).dropna()
        whole = bool((values % 1 == 0).all())
        if distinct > REGRESSION_MIN_DISTINCT or not whole:
            return "regression", f"numeric target with {distinct} distinct values"
        return "classification", f"whole-number target with {distinct} distinct values"
    return "classification", f"{clean_labels(present).nunique()} distinct labels"


def trivial_baseline(target: pd.Series, task: str, metric: str) -> tuple[float, float]:
    """(what a trivial model scores, a goal a little better than that) for a metric of default_metric."""
    if task == "classification":
        # Always predicting the majority class: its share as accuracy; a constant score has roc_auc 0.5.
        base = float(clean_labels(target).value_counts(normalize=True).iloc[0]) if metric == "accuracy" else 0.5
        return base, round(base + 0.1 * (1 - base), 3)
    values = to_numbers(target).dropna().to_numpy()
    base = float(values.std())  # rmse of always predicting the mean
    return base, float(f"{0.9 * base:.4g}")


def folder_kind(folder: Path) -> str:
    """images, audio or text: the kind of most files in a class-per-subfolder tree."""
    from dlpipe.collect.folders import extensions

    counts = {kind: 0 for kind in ("images", "audio", "text")}
    for path in folder.glob("*/**/*"):
        for kind in counts:
            counts[kind] += path.suffix.lower() in extensions(kind)
    kind = max(counts, key=counts.get)
    if not counts[kind]:
        raise DataError(
            "no image, audio or text files in class subfolders",
            where=str(folder),
            fix="a data folder holds one subfolder per class with the files inside",
        )
    return kind


def init_pipeline(
    data: str | Path, target: str | None, output: str | Path, *, task: str | None = None, name: str | None = None
) -> str:
    """Write a commented pipeline.yaml for `data` (a table, or a folder of class subfolders) with
    `target` (a folder's target is its `label`); returns its text."""
    from dlpipe.spec import FolderSource

    data, output = Path(data), Path(output)
    kind = folder_kind(data) if data.is_dir() else None
    if kind:
        collected = collect(FolderSource(**{kind: str(data)}))
        target = target or "label"
    elif target is None:
        raise DataError("--target is needed for a table", where=str(data), fix="name the column to predict")
    else:
        collected = collect(FileSource(path=str(data)))
    frame = collected.frame
    target_name = resolve_target(frame, target)
    if len(frame.columns) < 2:
        raise DataError(
            f"no feature columns besides the target {target_name!r}",
            where=str(data),
            fix="the table needs at least one column to predict from",
        )
    inferred_task, task_reason = infer_task(frame[target_name])
    task = task or inferred_task
    check_target(frame[target_name], task, target_name)
    n_classes = clean_labels(frame[target_name]).nunique() if task == "classification" else 0
    metric = default_metric(task, n_classes)
    base, goal = trivial_baseline(frame[target_name], task, metric)
    # a folder called data/ or images/ says less than the folder holding it
    stem = data.resolve().parent.name if kind and data.name.lower() in GENERIC_FOLDERS else data.stem
    name = name or re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "pipeline"

    rel = os.path.relpath(data.resolve(), output.resolve().parent)
    options = collected.options
    source = f"{rel}"
    extras = {k: options[k] for k in ("header", "delimiter", "encoding") if k in options}
    if kind:
        source_yaml = f"  source: {{{kind}: {_q(source)}}}   # one subfolder per class"
    elif (
        extras.get("header", True)
        and extras.get("encoding") == "utf-8"
        and extras.get("delimiter") in (",", "\t", None)
    ):
        source_yaml = f"  source: {_q(source)}"
    else:
        parts = [f"path: {_q(source)}"] + [
            f"{k}: {_q(v) if isinstance(v, str) else str(v).lower()}" for k, v in extras.items()
        ]
        source_yaml = f"  source: {{{', '.join(parts)}}}   # detected when reading the file"

    split_method = "stratified" if task == "classification" else "random"
    lines = [
        f"# dlpipe pipeline for {data.name}, written by `dlpipe init`. Edit freely; `dlpipe validate` checks it.",
        f"name: {_q(name)}",
        "problem:",
        f"  task: {task}          # {task_reason}" + ("" if task == inferred_task else " (overridden)"),
        f"  target: {_q(target_name)}",
        f"  metric: {metric}",
        f"  # A trivial model scores {metric} = {base:.4g}. This goal is just above it: raise it to what success",
        "  # means for you"
        + (" (lower is better for this metric)." if metric in ("rmse", "mae", "mape", "log_loss") else "."),
        f"  goal: {{{metric}: {goal}}}",
        "data:",
        source_yaml,
        f"  split: {{method: {split_method}, validation: 0.15, test: 0.15, seed: 42}}",
        "features:",
    ]
    for column in frame.columns:
        if column == target_name:
            continue
        kind, reason = infer_column(frame[column])
        value = "ignore" if kind == "ignore" else f"{{type: {kind}}}"
        lines.append(f"  {_q(column)}: {value}   # {_comment(reason)}")
    lines += [
        "model: {preset: balanced}   # fast | balanced | best; any model.* or training.* key set here wins",
        "training: {seed: 42}",
        "# budget: 10m              # wall-clock limit for the whole run; training is cut to fit",
        "# To search for better settings, uncomment (dotted paths into this file; a list is a choice):",
        "# tuning:",
        "#   method: tpe          # grid | random | tpe | cmaes",
        "#   trials: 20",
        "#   pruner: median       # none | median | asha | hyperband",
        "#   space:",
        "#     training.learning_rate: {log: [1.0e-4, 1.0e-2]}",
        "#     model.dropout: {float: [0.0, 0.5]}",
        "#     model.hidden: [64, 128, 256]",
        "",
    ]
    text = "\n".join(lines)
    raw, key_lines = parse_yaml(text, str(output))  # what we write must load as load_spec reads it
    validate_spec(raw, source=str(output), lines=key_lines)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return text


def _comment(reason: str) -> str:
    return reason.replace("\n", " ")


def _q(value: str) -> str:
    """A YAML scalar that reads back as the same string: plain when YAML keeps it a string, else
    double-quoted (JSON strings are valid YAML), as YAML reads 2024, yes, null or 1e3 as other types.
    """
    import json

    import yaml

    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ ./-]*", value) and value.strip() == value
    if plain and yaml.safe_load(value) == value:
        return value
    quoted = json.dumps(value, ensure_ascii=False)
    # JSON leaves U+2028, NEL and the like raw, which YAML reads as line breaks: escape the unprintable.
    return "".join(c if c.isprintable() else f"\\U{ord(c):08x}" for c in quoted)
