"""A disk cache for decoded inputs (images, spectrograms, sentence embeddings).

Decoding is the slow part of training on files: a PNG or WAV is decoded once, the result kept as
a `.npy` file that later epochs and later runs memory-map instead of decoding again. Entries are
keyed by what they were computed from (each file's path, size and modification time, and the
settings), so a changed file or setting misses the cache rather than reading stale data. Writes go
to a temporary file renamed into place: a crash leaves no half-written entry.

`DLPIPE_CACHE` sets the folder (default `~/.cache/dlpipe`); `DLPIPE_CACHE=off` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

# Fewer rows than this (a served request, a short predict call) are computed, not cached: they are
# cheap, and an entry per request would fill the disk.
MIN_ROWS = 32


def cache_dir() -> Path | None:
    """The cache folder, or None when caching is off."""
    setting = os.environ.get("DLPIPE_CACHE", "")
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    return Path(setting) if setting else Path.home() / ".cache" / "dlpipe"


def file_identity(paths: Iterable[Any]) -> list[Any]:
    """(path, size, modification time) per path; None for a path that is missing or not a file."""
    out: list[Any] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append([str(path), st.st_size, st.st_mtime_ns])
        except (OSError, TypeError, ValueError):
            out.append([str(path), None])
    return out


def holds_bytes(values: Iterable[Any]) -> bool:
    """Whether any value is file content rather than a path (a request to the server): such
    values are decoded every time, never written to the cache."""
    return any(isinstance(v, bytes | bytearray | memoryview) for v in values)


def cached_array(
    namespace: str, key: Any, compute: Callable[[], tuple[np.ndarray, dict[str, Any]]], rows: int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """`compute()`'s (array, JSON metadata), from the cache when an entry for `key` exists.

    The array comes back memory-mapped copy-on-write: pages are read as rows are used, and
    writing to it never touches the cache file. Under `MIN_ROWS` rows nothing is cached.
    """
    folder = cache_dir()
    if folder is None or (rows is not None and rows < MIN_ROWS):
        return compute()
    digest = hashlib.sha256(json.dumps([namespace, key], sort_keys=True, default=str).encode()).hexdigest()[:32]
    array_path = folder / namespace / f"{digest}.npy"
    meta_path = array_path.with_suffix(".json")
    try:
        return np.load(array_path, mmap_mode="c"), json.loads(meta_path.read_text())
    except (OSError, ValueError):
        pass  # absent, or damaged: compute it again
    array, meta = compute()
    try:
        array_path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(array_path, lambda f: np.save(f, np.ascontiguousarray(array)))
        _atomic_write(meta_path, lambda f: f.write(json.dumps(meta).encode()))
    except OSError:
        return array, meta  # a full or read-only disk costs speed, never the run
    return np.load(array_path, mmap_mode="c"), meta


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a cache entry is as readable as any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
