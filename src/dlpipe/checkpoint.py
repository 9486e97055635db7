"""The training loop's checkpoint: weights, best weights, optimizer and loop state in one
safetensors file with JSON metadata (never a pickle), replaced atomically after every epoch."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from dlpipe.errors import ResumeError


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs, saved as JSON in the checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0
    best_epoch: int = -1
    best_score: float = math.nan
    best_loss: float = math.inf
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str = ""


def save_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState, best: dict | None
) -> None:
    """Weights, best weights, optimizer state and loop state in one file, replaced atomically."""
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    if best is not None:
        tensors |= {f"best.{k}": v.contiguous() for k, v in best.items()}
    opt = optimizer.state_dict()
    for i, slots in opt["state"].items():
        tensors |= {f"opt.{i}.{k}": torch.as_tensor(v).contiguous() for k, v in slots.items()}
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in opt["param_groups"]]
    from dlpipe.package import strict_json

    meta = {"state": json.dumps(strict_json(state.__dict__), allow_nan=False), "param_groups": json.dumps(groups)}
    from dlpipe.rundir import replacing

    with replacing(path) as tmp:  # a full disk: the last whole checkpoint stands, the space is freed
        save_file(tensors, str(tmp), metadata=meta)


def load_checkpoint(
    path: Path | None, model: torch.nn.Module, optimizer: torch.optim.Optimizer, fingerprint: str
) -> tuple[TrainState, dict | None]:
    """Restore a run's model, optimizer and loop state; refuse a checkpoint of another pipeline."""
    if path is None or not path.exists():
        raise ResumeError("no checkpoint to resume from", where=str(path), fix="run without --resume")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        tensors = load_file(str(path))
        state = state_from_json(meta["state"])
    except Exception as exc:  # a truncated or foreign file: safetensors, JSON and key errors alike
        raise ResumeError(f"the checkpoint is unreadable: {exc}", where=str(path), fix="start a new run") from None
    if fingerprint and state.fingerprint != fingerprint:
        raise ResumeError(
            "the checkpoint was written by a different pipeline or data",
            where=str(path),
            fix="resume with the pipeline file and data the run started with, or start a new run",
        )
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, slot = key.split(".", 2)
            opt_state.setdefault(int(index), {})[slot] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    return state, best


def state_from_json(text: str) -> TrainState:
    """The loop state saved with weights. Strict JSON stored an undefined best score as null; the
    loop compares it as NaN."""
    state = json.loads(text)
    if state.get("best_score") is None:
        state["best_score"] = math.nan
    if state.get("best_loss") is None:
        state["best_loss"] = math.inf
    return TrainState(**state)


def checkpoint_fingerprint(path: Path) -> str | None:
    """The fingerprint a checkpoint was written with, or None when it cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["state"]).get("fingerprint")
    except Exception:
        return None
