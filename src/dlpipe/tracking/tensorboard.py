"""A run's scalars as TensorBoard event files in `DIR/<name>/<run-id>/`: each epoch's losses,
validation metric and learning rate, then the final validation and test metrics.

The writer is PyTorch's `torch.utils.tensorboard` when the `tensorboard` package is installed, else
`tensorboardX` (the same writer and file format without TensorBoard itself); neither is a
dependency of dlpipe."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from dlpipe.errors import ConfigError


def _writer_class() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError(
                "writing TensorBoard scalars needs a TensorBoard writer installed",
                where="tracking.tensorboard",
                fix="pip install tensorboard",
            ) from None
    return SummaryWriter


class TensorboardTracker:
    def __init__(self, folder: str) -> None:
        from dlpipe.spec.monitoring import expand

        self.writer_class = _writer_class()
        self.root = Path(expand(folder, "tracking.tensorboard") or folder)
        self.writer: Any = None
        self.metric = "metric"

    def start(self, folder: Path, spec: Any) -> str:
        self.metric = spec.problem.metric
        logdir = self.root / spec.name / folder.name
        # event files are named by the second they were opened: a resumed run opening its writer within
        # the same second as the run it continues would replace that run's file, and its epochs
        self.writer = self.writer_class(log_dir=str(logdir), filename_suffix=f".{secrets.token_hex(4)}")
        return f"tracking: TensorBoard scalars in {logdir} (tensorboard --logdir {self.root})"

    def epoch(self, record: dict[str, Any]) -> None:
        step = int(record["epoch"])
        scalars = {
            "loss/train": record.get("train_loss"),
            "loss/validation": record.get("validation_loss"),
            f"validation/{record.get('metric') or self.metric}": record.get("validation"),
            "lr": record.get("lr"),
        }
        for tag, value in scalars.items():
            if value is not None:
                self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()  # a person watching TensorBoard sees each epoch as it ends

    def finish(self, folder: Path, metrics: dict[str, Any]) -> None:
        step = int(metrics.get("epochs_run") or 0)
        for split in ("validation", "test"):
            for name, value in metrics.get(split, {}).items():
                if isinstance(value, int | float):
                    self.writer.add_scalar(f"final/{split}_{name}", float(value), step)
        self.writer.close()

    def fail(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
