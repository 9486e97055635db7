"""Every error a user can meet, one class each; the CLI maps them to a message and an exit code."""

from __future__ import annotations

import errno


class DlpipeError(Exception):
    """Base of the errors caused by input the user can fix. Exit code 2 unless a subclass says."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.message = message
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        """One line: where, what, and how to fix it when that is known."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} ({self.fix})" if self.fix else text


class ConfigError(DlpipeError):
    """The pipeline file is malformed, names an unknown key, or holds a bad value."""


class DataError(DlpipeError):
    """A data source is missing, unreadable, or does not fit the problem."""


class ArtifactError(DlpipeError):
    """A model or run folder is missing, incomplete, or fails its integrity check."""


class ResumeError(DlpipeError):
    """There is nothing to resume, or the checkpoint does not match the pipeline."""


class TuningError(DlpipeError):
    """A search ended without a usable trial, or a trial failed on the user's settings."""


class TrackingError(DlpipeError):
    """The tracking server named in `tracking:` cannot be reached or refuses the run."""


class StorageError(DlpipeError):
    """A file could not be written: the disk, or the user's quota, is full."""

    @classmethod
    def full(cls, what: str = "", *, where: str | None = None, fix: str = "free space and try again") -> StorageError:
        """The one message for a full disk, with what was left undone."""
        return cls(f"the disk is full (no space left on the device){what}", where=where, fix=fix)


FULL = ("No space left on device", "os error 28", "database or disk is full", "Disk quota exceeded")


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` reports a full disk, in the words of the OS, pyarrow, safetensors or SQLite
    (the last two raise their own classes, saying so only in the message)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(words in str(exc) for words in FULL)
