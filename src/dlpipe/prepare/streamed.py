"""Preparation for tables larger than memory: one pass of statistics, one pass into the tensor cache.

Pass one reads the source batch by batch, assigns each row a split by a seeded hash of its key
(its position in the source; for a group split, its group), and feeds the training rows to each
feature type's one-pass `Fitter`: the result is the same `Preprocessor` state the in-memory path
fits, saved in model.json as usual. Column types are inferred on the training rows of the first
batch. Pass two transforms every batch with that preprocessor and appends it to the cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe import features
from dlpipe.collect import check_unique_columns
from dlpipe.errors import ConfigError, DataError
from dlpipe.features.category import normalise
from dlpipe.features.numeric import to_numbers
from dlpipe.prepare import UNSEEN_CLASS, Prepared, _drop_unusable_target, _resolve, infer_types
from dlpipe.prepare.cache import CachedSplit, CacheWriter
from dlpipe.prepare.preprocessor import Column, Preprocessor, check_options
from dlpipe.prepare.split import SPLITS, column_codes, hash_split
from dlpipe.prepare.target import check_target, clean_labels, fit_target, resolve_target
from dlpipe.sketch import CappedCounts, Moments

if TYPE_CHECKING:
    from dlpipe.collect.stream import Stream
    from dlpipe.spec import PipelineSpec

REFERENCE_ROWS = 2000  # as evaluate.REFERENCE_ROWS: the raw training rows kept for monitoring


def prepare_source(spec: PipelineSpec, root: Path) -> Prepared:
    """`data.source` streamed, its cache in a new folder under `root` (removed again on failure)."""
    import secrets
    import shutil

    from dlpipe.collect.stream import open_stream

    if spec.tuning is not None:
        raise ConfigError(
            "tuning does not run on streamed data yet", where="tuning", fix="remove tuning, or data.streaming: off"
        )
    if spec.training.backend == "ray":
        raise ConfigError(
            "training on Ray does not read streamed data yet (its workers take the tensors in memory)",
            where="training.backend",
            fix="training.backend: local, or data.streaming: off",
        )
    stream = open_stream(spec.data.source, spec.data.batch_rows)
    folder = root / f".cache-{secrets.token_hex(4)}"
    try:
        return prepare_streamed(spec, stream, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def prepare_streamed(spec: PipelineSpec, stream: Stream, cache_folder: Path) -> Prepared:
    """Fit preprocessing in one pass over `stream`, then write every split to a cache in `cache_folder`."""
    from dlpipe.metrics import default_metric

    problem = spec.problem
    batches = stream.batches()
    first = next(batches, None)
    if first is None or first.empty:
        raise DataError("the source holds no rows", where=stream.origin)
    check_unique_columns(list(first.columns), stream.origin)
    target = resolve_target(first, problem.target)
    check_target(first[target], problem.task, target)
    splitter = _Splitter(spec, target)
    sample = next(splitter.assign([first]))
    types = infer_types(sample[0][sample[1] == 0], target, spec, splitter.reserved)
    fitters = _fitters(spec, types)
    labels = TargetStats(problem.task)
    for frame, codes in splitter.assign(chain([first], batches)):
        train = frame[codes == 0]
        labels.update(train[target])
        for name, fitter in fitters.items():
            fitter.update(train[name])
    if not splitter.counts[0]:
        raise DataError(f"the train split is empty ({splitter.rows} rows in the source)", where="data.split")
    columns = [Column(name, *types[name], fitter.state()) for name, fitter in fitters.items()]
    preprocessor = Preprocessor(problem.task, target, labels.state(target), columns)
    splits, dropped = _write_cache(preprocessor, stream, splitter, cache_folder)
    n_classes = len(preprocessor.classes or [])
    resolved = _resolve(
        spec, target, splitter.method, default_metric(problem.task, n_classes), types, len(splits["train"])
    )
    kind = "" if problem.task == "regression" else " (binary)" if n_classes == 2 else " (multiclass)"
    profile = {
        "source": stream.origin,
        "rows": splitter.rows,
        "streamed": {"batch_rows": spec.data.batch_rows, "profiled_on": "the training split, in one pass"},
        "columns": {
            name: fitters[name].profile(*types[name])
            if name in fitters
            else {"type": "ignore", "reason": types[name][1]}
            for name in types
        },
        "target": labels.profile(target),
        "task": problem.task + kind,
        "splits": {"method": splitter.method, **{name: len(s) for name, s in splits.items()}},
        "dropped": {
            "columns": [{"name": n, "reason": r} for n, (t, r) in types.items() if t == "ignore"],
            "rows": splitter.dropped(stream) + dropped,
            "files": [],
        },
        "notes": stream.notes + splitter.notes,
    }
    return Prepared(preprocessor, splits, profile, resolved, cache=splits["train"].cache)


def _fitters(spec: PipelineSpec, types: dict[str, tuple[str, str]]) -> dict[str, features.base.Fitter]:
    fitters = {}
    for name, (kind, _) in types.items():
        if kind == "ignore":
            continue
        check_options(name, kind, spec.feature_spec(name))
        fitter = features.get(kind).fitter(name, spec.feature_spec(name))
        if fitter is None:
            raise DataError(
                f"column {name!r} is {kind}: streamed data takes numeric, category, binary and datetime columns",
                where=f"features.{name}",
                fix=f"set features.{name}: ignore, or data.streaming: off to read the table into memory",
            )
        fitters[name] = fitter
    if not fitters:
        raise DataError("no usable feature columns: every column was ignored", fix="see profile.json for why")
    return fitters


class _Splitter:
    """Split codes per row, batch by batch; counts rows read, kept and dropped on the way."""

    def __init__(self, spec: PipelineSpec, target: str) -> None:
        task, split = spec.problem.task, spec.data.split
        self.task, self.target, self.split = task, target, split
        self.method = split.method or ("stratified" if task == "classification" else "random")
        self.notes: list[str] = []
        if self.method == "time":
            raise ConfigError(
                "a time split needs every row sorted by time, which streaming does not do",
                where="data.split.method",
                fix="use random, group or column, or data.streaming: off",
            )
        if self.method == "stratified":
            self.notes.append(
                "streamed data is split by a seeded hash of each row's position, not stratified: "
                "class shares match the source's in expectation only"
            )
        self.reserved = {split.column: f"the split column ({self.method} split)"} if split.column else {}
        self.rows = self.lost = self.unassigned = 0
        self.counts = [0, 0, 0]

    def assign(self, frames: Iterable[pd.DataFrame]) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """(rows with a usable target, their split codes) per batch; -1 for a row in no split.

        Each call starts counting again: every pass reads the source from its first row.
        """
        self.rows = self.lost = self.unassigned = 0
        self.counts = [0, 0, 0]
        for frame in frames:
            if self.split.column and self.split.column not in frame.columns:
                raise DataError(f"split column {self.split.column!r} is not in the data", where="data.split.column")
            codes = self._codes(frame, np.arange(self.rows, self.rows + len(frame), dtype=np.uint64))
            self.rows += len(frame)
            frame, codes = frame.assign(_code=codes), None
            frame, lost = _drop_unusable_target(frame, self.target, self.task)
            self.lost += lost
            codes = frame.pop("_code").to_numpy()
            self.unassigned += int((codes < 0).sum())
            self.counts = [c + int((codes == i).sum()) for i, c in enumerate(self.counts)]
            yield frame, codes

    def _codes(self, frame: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
        split = self.split
        if self.method == "column":
            return column_codes(frame[split.column])
        keys = positions
        if self.method == "group":
            keys = pd.util.hash_array(normalise(frame[split.column]).fillna("<missing>").to_numpy(dtype=object))
        return hash_split(keys, seed=split.seed, validation=split.validation, test=split.test)

    def dropped(self, stream: Stream) -> list[dict[str, Any]]:
        out = []
        if stream.dropped_lines:
            out.append({"reason": "malformed lines in the file", "count": stream.dropped_lines, "split": "source"})
        if self.lost:
            out.append({"reason": f"missing or unusable target {self.target!r}", "count": self.lost, "split": "source"})
        if self.unassigned:
            reason = f"no usable value in split column {self.split.column!r}"
            out.append({"reason": reason, "count": self.unassigned, "split": "source"})
        return out


def _write_cache(
    preprocessor: Preprocessor, stream: Stream, splitter: _Splitter, folder: Path
) -> tuple[dict[str, CachedSplit], list[dict[str, Any]]]:
    """Pass two: every batch through the preprocessor into the cache; the reference rows kept raw."""
    n_train = splitter.counts[0]
    wanted = np.sort(np.random.default_rng(0).permutation(n_train)[:REFERENCE_ROWS])  # as evaluate_splits
    writer, reference, seen, unseen = CacheWriter(folder), [], 0, [0, 0, 0]
    for frame, codes in splitter.assign(stream.batches()):
        for code, name in enumerate(SPLITS):
            part = frame[codes == code]
            if part.empty:
                continue
            y, ok = preprocessor.encode_target(part[preprocessor.target])
            unseen[code] += int((~ok).sum())
            part = part[ok]
            writer.append(name, {**preprocessor.transform(part), "y": y[ok]})
            if code == 0:
                hit = wanted[(wanted >= seen) & (wanted < seen + len(part))] - seen
                reference.append(part.iloc[hit])
                seen += len(part)
    cache = writer.close()
    splits = {}
    for name in SPLITS:
        if name not in cache.splits:
            cache.remove()
            raise DataError(
                f"the {name} split is empty ({splitter.rows} rows in the source)",
                where="data.split",
                fix="add rows or change the split fractions",
            )
        y = cache.read(name, "y", 0, cache.splits[name]["rows"])
        splits[name] = CachedSplit(cache, name, y)
    splits["train"].frame = pd.concat(reference, ignore_index=True)
    splits["train"].sample_rows = wanted
    dropped = [
        {"reason": UNSEEN_CLASS, "count": count, "split": name}
        for name, count in zip(SPLITS, unseen, strict=True)
        if count
    ]
    return splits, dropped


class TargetStats:
    """The target's state and profile in one pass: class counts, or moments of the values."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.classes, self.values = CappedCounts(cap=10_000), Moments()

    def update(self, column: pd.Series) -> None:
        if self.task == "classification":
            self.classes.update(clean_labels(column))
        else:
            self.values.update(to_numbers(column).dropna().to_numpy())

    def state(self, name: str) -> dict[str, Any]:
        if self.task == "classification":
            classes = self.classes.most_common().index
            if len(classes) < 2:
                raise DataError(f"target column {name!r} has one class only in the training split: nothing to learn")
            return fit_target(pd.Series(classes), self.task)
        std = self.values.std()
        return {"mean": self.values.mean, "std": std if std > 1e-12 else 1.0}

    def profile(self, name: str) -> dict[str, Any]:
        if self.task == "classification":
            return {"name": name, "class_balance": {str(k): int(v) for k, v in self.classes.most_common().items()}}
        m = self.values
        return {"name": name, "min": m.low, "max": m.high, "mean": m.mean, "std": m.std()}
