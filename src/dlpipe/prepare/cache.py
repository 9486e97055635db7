"""The tensor cache: preprocessed splits written once to raw files on disk, read back in blocks.

Each array of a split is one file of C-ordered rows (`cache/train.numeric.bin`, ...), described
by `cache/header.json` (dtype, shape of a row, rows): `numpy.memmap` opens any of them, and no
pickle is involved. Reads go through `numpy.fromfile` at an offset rather than a mapping, so the
pages read count against the page cache, not the process's resident memory. Training reads
shuffled blocks (`CachedBatches`), evaluation reads chunks in order.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import hashlib

    import torch

HEADER = "header.json"
BLOCK_ROWS = 65_536  # rows read at once
SHUFFLE_BLOCKS = 4  # blocks whose rows are shuffled together


class CacheWriter:
    """Appends each batch's arrays to the files of its split; `close()` writes the header."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.splits: dict[str, dict[str, Any]] = {}
        self.files: dict[str, BinaryIO] = {}

    def append(self, split: str, arrays: dict[str, np.ndarray]) -> None:
        entry = self.splits.setdefault(split, {"rows": 0, "arrays": {}})
        for key, array in arrays.items():
            meta = entry["arrays"].setdefault(
                key, {"file": f"{split}.{key}.bin", "dtype": array.dtype.str, "shape": list(array.shape[1:])}
            )
            if meta["file"] not in self.files:
                self.files[meta["file"]] = (self.folder / meta["file"]).open("wb")
            self.files[meta["file"]].write(np.ascontiguousarray(array, dtype=meta["dtype"]).tobytes())
        entry["rows"] += len(next(iter(arrays.values())))

    def close(self) -> Cache:
        for f in self.files.values():
            f.close()
        header = {"format": "dlpipe tensor cache 1", "splits": self.splits}
        (self.folder / HEADER).write_text(json.dumps(header, indent=2))
        return Cache(self.folder, self.splits)


@dataclass
class Cache:
    """A written cache; `move` renames its folder (into the run folder once that exists)."""

    folder: Path
    splits: dict[str, dict[str, Any]]

    def move(self, folder: Path) -> None:
        os.replace(self.folder, folder)
        self.folder = folder

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def read(self, split: str, key: str, start: int, stop: int) -> np.ndarray:
        meta = self.splits[split]["arrays"][key]
        dtype, shape = np.dtype(meta["dtype"]), tuple(meta["shape"])
        width = math.prod(shape)
        count = (stop - start) * width
        data = np.fromfile(self.folder / meta["file"], dtype=dtype, count=count, offset=start * width * dtype.itemsize)
        return data.reshape(stop - start, *shape)


@dataclass
class CachedSplit:
    """One split in the cache, with the interface of an in-memory `SplitData` (read, chunks, take,
    sample, loader): the target in memory, the inputs on disk, and a sample of the raw rows."""

    cache: Cache
    name: str
    y: np.ndarray
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)  # the raw rows at `sample_rows`
    sample_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def keys(self) -> list[str]:
        return [k for k in self.cache.splits[self.name]["arrays"] if k != "y"]

    def read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        stop = min(stop, len(self))
        return {k: self.cache.read(self.name, k, start, stop) for k in self.keys}

    def chunks(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self), size):
            yield self.read(start, start + size)

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The inputs of some rows (any order), read block by block."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in self.keys}
        blocks = rows[order] // BLOCK_ROWS
        for block in np.unique(blocks):
            wanted = rows[order][blocks == block] - block * BLOCK_ROWS
            for key, values in self.read(block * BLOCK_ROWS, (block + 1) * BLOCK_ROWS).items():
                parts[key].append(values[wanted])
        back = np.argsort(order, kind="stable")  # undo the sort
        return {k: np.concatenate(v)[back] for k, v in parts.items()}

    def sample(self, rows: np.ndarray) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """The raw rows and inputs of the reference sample (kept while the cache was written)."""
        if not np.array_equal(rows, self.sample_rows):
            raise ValueError("a cached split keeps the raw rows of its reference sample only")
        return self.frame, self.take(rows)

    def digest_into(self, digest: hashlib._Hash) -> None:
        """The bytes an in-memory split of the same arrays would hash: each file as it is, then y."""
        for key in sorted(self.keys):
            with (self.cache.folder / self.cache.splits[self.name]["arrays"][key]["file"]).open("rb") as f:
                while chunk := f.read(1 << 24):
                    digest.update(chunk)
        digest.update(np.ascontiguousarray(self.y).tobytes())

    def loader(self, target_dtype: torch.dtype) -> CachedBatches:
        return CachedBatches(self, target_dtype)


class CachedBatches:
    """Training batches from the cache: blocks in a seeded random order, rows shuffled within
    groups of SHUFFLE_BLOCKS blocks. Memory holds one group, whatever the split's size."""

    def __init__(self, split: CachedSplit, target_dtype: torch.dtype) -> None:
        import torch

        self.split = split
        self.y = torch.as_tensor(split.y, dtype=target_dtype)

    def __len__(self) -> int:
        return len(self.split)

    def batches(
        self, batch_size: int, generator: torch.Generator, replica: Any = None
    ) -> Iterator[tuple[dict, torch.Tensor]]:
        import torch

        from dlpipe.train import LOCAL, batch_indices

        blocks = torch.randperm(math.ceil(len(self) / BLOCK_ROWS), generator=generator).tolist()
        for i in range(0, len(blocks), SHUFFLE_BLOCKS):
            spans = [(b * BLOCK_ROWS, min(len(self), (b + 1) * BLOCK_ROWS)) for b in blocks[i : i + SHUFFLE_BLOCKS]]
            parts = [self.split.read(start, stop) for start, stop in spans]
            inputs = {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in parts[0]}
            y = torch.cat([self.y[start:stop] for start, stop in spans])
            for idx in batch_indices(len(y), batch_size, generator, replica or LOCAL):
                yield {k: v[idx] for k, v in inputs.items()}, y[idx]

    def chunks(self, size: int) -> Iterator[dict[str, torch.Tensor]]:
        import torch

        for arrays in self.split.chunks(size):
            yield {k: torch.from_numpy(v) for k, v in arrays.items()}

    def for_ridge(self, rows: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A seeded sample of training rows for the closed-form ridge fit."""
        import torch

        sample = np.sort(np.random.default_rng(0).permutation(len(self))[:rows])
        return {k: torch.from_numpy(v) for k, v in self.split.take(sample).items()}, self.y[sample]
