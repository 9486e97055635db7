"""The run folder: a new one per run, or the unfinished one `dlpipe run --resume` continues; and
the atomic writes every file in it goes through (a crash leaves the old file or the new one)."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from dlpipe.errors import ResumeError

CHECKPOINT = "checkpoint.safetensors"  # the training loop's state after every epoch (dlpipe.train)
STUDY_FINGERPRINT = "tuning/fingerprint"  # the config and data a search belongs to (dlpipe.tune)


def run_folder(root: Path, name: str, resume: bool, fingerprint: str) -> Path:
    """A new run folder, or with `resume` the newest unfinished run of this same config and data."""
    base = root / name
    if not resume:
        folder = base / f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        folder.mkdir(parents=True)
        return folder
    unfinished = sorted((p for p in base.glob("*") if resumable(p)), key=lambda p: p.name)
    matching = [p for p in unfinished if run_fingerprint(p) == fingerprint]
    if matching:
        tidy(matching[-1])
        return matching[-1]
    if unfinished:
        raise ResumeError(
            f"{len(unfinished)} unfinished run(s) of {name!r}, none written by this pipeline file and data",
            where=str(base),
            fix="resume with the pipeline file and data the run started with, or run without --resume",
        )
    raise ResumeError(f"no unfinished run of {name!r} to resume", where=str(base), fix="run without --resume")


def tidy(folder: Path) -> None:
    """Remove what a killed run's atomic writes left half-done: `*.tmp` files and `.model-*` folders
    (dlpipe.package builds the model folder there). Nothing reads them; they only take space."""
    for leftover in [*folder.glob(".model-*"), *folder.glob("*.tmp")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def resumable(folder: Path) -> bool:
    """An unfinished run that left a training checkpoint or a tuning study behind."""
    started = (folder / CHECKPOINT).exists() or (folder / STUDY_FINGERPRINT).exists()
    return started and not (folder / "metrics.json").exists()


def run_fingerprint(folder: Path) -> str | None:
    """The config-and-data fingerprint an unfinished run was started with."""
    if (folder / CHECKPOINT).exists():
        from dlpipe.checkpoint import checkpoint_fingerprint

        return checkpoint_fingerprint(folder / CHECKPOINT)
    try:
        return (folder / STUDY_FINGERPRINT).read_text().strip()
    except OSError:
        return None


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A path beside `path` to write to, renamed over it when the block ends: a crash leaves the old
    file or the new, never half of one; a block that fails (a full disk) removes its temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """`text` (UTF-8) written atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    """Strict JSON (an undefined metric, NaN, becomes null), replaced atomically."""
    from dlpipe.manifest import json_default
    from dlpipe.package import strict_json

    write_text(path, json.dumps(strict_json(data), indent=2, default=json_default, allow_nan=False))
