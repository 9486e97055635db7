"""Preprocessing: find the target, infer types, drop what cannot be used, split, fit, transform."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe import features
from dlpipe.collect import Collected
from dlpipe.errors import ConfigError, DataError
from dlpipe.features.base import Problems
from dlpipe.features.numeric import to_numbers
from dlpipe.prepare.preprocessor import Preprocessor
from dlpipe.prepare.profile import column_profile, target_profile
from dlpipe.prepare.split import SPLITS, split_rows
from dlpipe.prepare.target import check_target, clean_labels, resolve_target

if TYPE_CHECKING:
    import hashlib
    from collections.abc import Iterator

    import torch

    from dlpipe.prepare.cache import Cache, CachedSplit
    from dlpipe.spec import PipelineSpec
    from dlpipe.train import Batches

UNSEEN_CLASS = "class not seen in the training split"


@dataclass
class SplitData:
    """One split, ready for the network: feature arrays by type, the encoded target, the raw rows."""

    inputs: dict[str, np.ndarray]
    y: np.ndarray
    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.y)

    # the interface a split on disk (prepare.cache.CachedSplit) shares

    def read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {k: v[start:stop] for k, v in self.inputs.items()}

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[rows] for k, v in self.inputs.items()}

    def chunks(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self), size):
            yield self.read(start, start + size)

    def sample(self, rows: np.ndarray) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """Raw rows and inputs of a sample (the monitoring reference)."""
        return self.frame.iloc[rows].reset_index(drop=True), self.take(rows)

    def digest_into(self, digest: hashlib._Hash) -> None:
        for key in sorted(self.inputs):
            digest.update(np.ascontiguousarray(self.inputs[key]).tobytes())
        digest.update(np.ascontiguousarray(self.y).tobytes())

    def loader(self, target_dtype: torch.dtype) -> Batches:
        """The split as tensors for the training loop and evaluation."""
        import torch

        from dlpipe.train import Batches

        inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.inputs.items()}
        return Batches(inputs, torch.as_tensor(self.y, dtype=target_dtype))


@dataclass
class Prepared:
    preprocessor: Preprocessor
    splits: dict[str, SplitData | CachedSplit]
    profile: dict[str, Any]
    spec: PipelineSpec  # the resolved pipeline
    cache: Cache | None = None  # streamed data: the tensor cache on disk


def infer_types(
    frame: pd.DataFrame, target: str, spec: PipelineSpec, reserved: dict[str, str]
) -> dict[str, tuple[str, str]]:
    """(type, reason) per column: the user's override, a reserved role, or inference."""
    types: dict[str, tuple[str, str]] = {}
    for name in frame.columns:
        if name == target:
            continue
        override = spec.feature_spec(name)
        if name in reserved:
            types[name] = ("ignore", reserved[name])
        else:
            inferred, reason = features.infer_column(frame[name])
            if override is None or override.type is None or override.type == inferred:
                types[name] = (inferred, reason)
            else:
                types[name] = (override.type, f"set in the pipeline file (inferred {inferred}: {reason})")
    if target in spec.features:
        raise ConfigError(
            f"features lists the target column {target!r}", where=f"features.{target}", fix="remove it from features"
        )
    unknown = [c for c in spec.features if c not in frame.columns]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(frame.columns), n=1)
        raise DataError(
            f"features names column {unknown[0]!r}, which is not in the data",
            where=f"features.{unknown[0]}",
            fix=f"did you mean {close[0]!r}?" if close else "remove it or fix the name",
        )
    return types


def prepare(
    spec: PipelineSpec,
    source: Collected,
    validation: Collected | None = None,
    test: Collected | None = None,
    preprocessor: Preprocessor | None = None,
) -> Prepared:
    """Turn collected tables into fitted preprocessing state and network-ready splits.

    Only the training split decides anything: column types, preprocessing statistics, classes. With
    a `preprocessor` (a champion's, to warm-start from its weights) its state is used as it is;
    rows of classes it does not know are left out and counted.
    """
    from dlpipe.metrics import default_metric

    problem = spec.problem
    target = resolve_target(source.frame, problem.target)
    check_target(source.frame[target], problem.task, target)
    method = spec.data.split.method or ("stratified" if problem.task == "classification" else "random")
    dropped: list[dict[str, Any]] = []
    frames, notes = _split_frames(spec, method, source, {"validation": validation, "test": test}, target, dropped)
    check_target(frames["train"][target], problem.task, target)

    column = spec.data.split.column
    reserved = {column: f"the split column ({method} split)"} if method in ("group", "column") else {}
    if preprocessor is None:
        types = infer_types(frames["train"], target, spec, reserved)
        preprocessor = Preprocessor.fit(frames["train"], problem.task, target, types, spec)
    else:
        types = {c.name: (c.type, c.reason) for c in preprocessor.columns}
        missing = [name for name in types if name not in source.frame]
        if missing:
            raise DataError(f"column {missing[0]!r} of the model to warm-start from is not in the data")
    files: list[dict[str, Any]] = [{**f, "split": "source"} for f in source.skipped]
    splits = _encode_splits(preprocessor, frames, dropped, files)

    n_classes = len(preprocessor.classes or [])
    resolved = _resolve(spec, target, method, default_metric(problem.task, n_classes), types, len(splits["train"]))
    if source.dropped_lines:
        dropped.append({"reason": "malformed lines in the file", "count": source.dropped_lines, "split": "source"})
    kind = "" if problem.task == "regression" else " (binary)" if n_classes == 2 else " (multiclass)"
    profile = {
        "source": source.origin,
        "rows": len(source.frame),
        "columns": {name: column_profile(source.frame[name], *types[name]) for name in types},
        "target": target_profile(frames["train"][target], problem.task),
        "task": problem.task + kind,
        "splits": {"method": method, **{name: len(s) for name, s in splits.items()}},
        "dropped": {
            "columns": [{"name": n, "reason": r} for n, (t, r) in types.items() if t == "ignore"],
            "rows": dropped,
            "files": files,
        },
        "notes": source.notes + notes,
    }
    return Prepared(preprocessor, splits, profile, resolved)


def _split_frames(
    spec: PipelineSpec,
    method: str,
    source: Collected,
    separate: dict[str, Collected | None],
    target: str,
    dropped: list[dict[str, Any]],
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Train/validation/test tables: split from the source, or taken from separate sources."""
    task, split = spec.problem.task, spec.data.split
    frame, lost = _drop_unusable_target(source.frame, target, task)
    if lost:
        dropped.append({"reason": f"missing or unusable target {target!r}", "count": lost, "split": "source"})
    labels = pd.factorize(clean_labels(frame[target]), sort=True)[0] if task == "classification" else None
    fractions = {k: (0.0 if separate[k] is not None else getattr(split, k)) for k in separate}
    index, notes, unassigned = split_rows(
        frame,
        method=method,
        validation=fractions["validation"],
        test=fractions["test"],
        seed=split.seed,
        column=split.column,
        labels=labels,
    )
    if unassigned:
        dropped.append(
            {"reason": f"no usable value in split column {split.column!r}", "count": unassigned, "split": "source"}
        )
    frames = {name: frame.iloc[index[name]].reset_index(drop=True) for name in SPLITS}
    for name, extra in separate.items():
        if extra is not None:
            frames[name], lost = _drop_unusable_target(_separate_frame(extra, target, name), target, task)
            if lost:
                dropped.append({"reason": "missing or unusable target", "count": lost, "split": name})
    for name in SPLITS:
        if len(frames[name]) == 0:
            raise DataError(
                f"the {name} split is empty ({len(frame)} rows in the source)",
                where="data.split",
                fix="add rows or change the split fractions",
            )
    return frames, notes


def _encode_splits(
    preprocessor: Preprocessor,
    frames: dict[str, pd.DataFrame],
    dropped: list[dict[str, Any]],
    files: list[dict[str, Any]],
) -> dict[str, SplitData]:
    """Each split through the fitted preprocessor.

    Rows whose class training never saw, and rows with a file their feature type cannot use (a
    corrupt image, an empty recording), are left out, counted, and the files listed.
    """
    splits = {}
    for name in SPLITS:
        y, ok = preprocessor.encode_target(frames[name][preprocessor.target])
        if not ok.all():
            dropped.append({"reason": UNSEEN_CLASS, "count": int((~ok).sum()), "split": name})
        kept = frames[name][ok].reset_index(drop=True)
        problems = Problems()
        inputs = preprocessor.transform(kept, problems)
        usable = problems.mask(len(kept))
        if not usable.all():
            dropped.append({"reason": "unusable file or value", "count": int((~usable).sum()), "split": name})
            files.extend({**p, "split": name} for p in problems.listed)
            inputs = {k: v[usable] for k, v in inputs.items()}
            kept = kept[usable].reset_index(drop=True)
        if len(kept) == 0:
            raise DataError(
                f"the {name} split is empty once unusable rows are left out",
                where="data",
                fix="see the files listed under dropped.files in profile.json",
            )
        splits[name] = SplitData(inputs, y[ok][usable], kept)
    return splits


def _drop_unusable_target(frame: pd.DataFrame, target: str, task: str) -> tuple[pd.DataFrame, int]:
    # the same tests encode_target applies
    usable = clean_labels if task == "classification" else to_numbers
    ok = usable(frame[target]).notna()
    return frame[ok.to_numpy()].reset_index(drop=True), int((~ok).sum())


def _separate_frame(extra: Collected, target: str, name: str) -> pd.DataFrame:
    """The table of a separate validation/test source, which must hold the target column."""
    frame = extra.frame
    if target not in frame.columns:
        raise DataError(f"the separate {name} data has no target column {target!r}", where=f"data.{name}")
    return frame


def _resolve(
    spec: PipelineSpec, target: str, method: str, metric: str, types: dict[str, tuple[str, str]], train_rows: int
) -> PipelineSpec:
    """The pipeline with every inferred choice written in, as saved with the run and the model."""
    problem = spec.problem.model_copy(update={"target": target, "metric": spec.problem.metric or metric})
    split = spec.data.split.model_copy(update={"method": method})
    data = spec.data.model_copy(update={"split": split})
    resolved_features = dict(spec.features)
    for name, (kind, _) in types.items():
        if name not in resolved_features:
            resolved_features[name] = "ignore" if kind == "ignore" else {"type": kind}
    from dlpipe.spec import auto_batch_size, validate_spec

    training = spec.training
    if training.batch_size == "auto":
        training = training.model_copy(update={"batch_size": auto_batch_size(train_rows)})
    model = spec.model
    if model.numeric_embedding == "auto":
        from dlpipe.spec.presets import auto_numeric_embedding

        model = model.model_copy(update={"numeric_embedding": auto_numeric_embedding(train_rows)})
    raw = spec.model_copy(update={"problem": problem, "data": data, "training": training, "model": model}).model_dump(
        mode="json", exclude_none=True
    )
    raw["features"] = {
        k: (v if isinstance(v, str | dict) else v.model_dump(exclude_none=True)) for k, v in resolved_features.items()
    }
    return validate_spec(raw, source="resolved pipeline")
