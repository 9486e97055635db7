"""The tensor cache: what is written reads back the same, in order, by rows, and shuffled for training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlpipe.prepare import SplitData
from dlpipe.prepare import cache as cache_module
from dlpipe.prepare.cache import CachedSplit, CacheWriter

ROWS = 1_000


@pytest.fixture
def split(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "BLOCK_ROWS", 64)  # many blocks from a small split
    rng = np.random.default_rng(0)
    arrays = {
        "numeric": rng.normal(size=(ROWS, 3, 2)).astype(np.float32),
        "category": rng.integers(0, 9, size=(ROWS, 2)),
        "y": np.arange(ROWS, dtype=np.int64),  # the row's own number: order is visible
    }
    writer = CacheWriter(tmp_path / "cache")
    for rows in np.array_split(np.arange(ROWS), 7):
        writer.append("train", {k: v[rows] for k, v in arrays.items()})
    cache = writer.close()
    return CachedSplit(cache, "train", cache.read("train", "y", 0, ROWS)), arrays


def test_reads_back_what_was_written(split):
    cached, arrays = split
    in_memory = SplitData({k: v for k, v in arrays.items() if k != "y"}, arrays["y"], None)
    assert len(cached) == ROWS and cached.cache.splits["train"]["rows"] == ROWS
    for key in ("numeric", "category"):
        assert np.array_equal(np.concatenate([c[key] for c in cached.chunks(150)]), arrays[key])
        rows = np.array([999, 3, 64, 65, 3, 500])
        assert np.array_equal(cached.take(rows)[key], in_memory.take(rows)[key])
        assert np.array_equal(cached.read(990, 2_000)[key], arrays[key][990:])
    import hashlib

    digests = [hashlib.sha256(), hashlib.sha256()]
    cached.digest_into(digests[0])
    in_memory.digest_into(digests[1])
    assert digests[0].hexdigest() == digests[1].hexdigest()  # the registry's lineage is the same


def test_training_batches_take_every_row_once_shuffled_and_seeded(split):
    cached, arrays = split
    loader = cached.loader(torch.int64)

    def epoch(seed: int) -> list[torch.Tensor]:
        return [y for _, y in loader.batches(100, torch.Generator().manual_seed(seed))]

    first = epoch(1)
    order = torch.cat(first)
    assert sorted(order.tolist()) == list(range(ROWS)) and min(len(y) for y in first) >= 2
    assert torch.equal(order, torch.cat(epoch(1))) and not torch.equal(order, torch.cat(epoch(2)))
    assert not torch.equal(order[:64], torch.arange(64))  # not the file's order
    inputs, y = next(loader.batches(50, torch.Generator().manual_seed(3)))
    assert torch.equal(inputs["category"], torch.from_numpy(arrays["category"][y.numpy()]))
