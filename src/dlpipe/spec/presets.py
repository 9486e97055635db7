"""`model.preset`: fast | balanced | best, each a bundle of model and training settings.

A preset fills in every model and training key the file leaves out; a key the file sets wins. The
resolved pipeline.yaml of a run writes the preset and every value it chose. `balanced` is the
default and its values are the fields' own defaults in `models.py` (a test holds them equal), so a
`ModelSpec()` built in code is the balanced model too. How the bundles were chosen, with the
figures: benchmarks/README.md, "quality.py".
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT = "balanced"
EMBEDDING_ROWS = 10_000  # `numeric_embedding: auto` embeds from this many training rows
EMBEDDING_SIZE = 16

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # a small network and a short schedule: a few seconds on the examples
    "fast": {
        "model": {"layers": 1, "hidden": 64, "dropout": 0.3, "ensemble": 1, "numeric_embedding": 0},
        "training": {"epochs": 30, "early_stopping": 5, "learning_rate": 3e-3, "weight_decay": 1e-4},
    },
    "balanced": {
        "model": {
            "layers": 2,
            "hidden": 128,
            "dropout": 0.5,
            "ensemble": 1,
            "numeric_embedding": "auto",
            "numeric_embedding_kind": "periodic",
        },
        "training": {"epochs": 100, "early_stopping": 20, "learning_rate": 3e-3, "weight_decay": 1e-4},
    },
    # TabM-style: members sharing the encoders, averaged; PLR embeddings; a longer schedule
    "best": {
        "model": {
            "layers": 2,
            "hidden": 128,
            "dropout": 0.5,
            "ensemble": 4,
            "numeric_embedding": "auto",
            "numeric_embedding_kind": "periodic",
        },
        "training": {"epochs": 200, "early_stopping": 20, "learning_rate": 3e-3, "weight_decay": 1e-4},
    },
}
NAMES = tuple(PRESETS)


def auto_batch_size(train_rows: int) -> int:
    """`training.batch_size: auto`: small tables need many small steps; large ones fill the CPU with
    bigger batches."""
    return int(min(512, max(32, 2 ** round(math.log2(max(1, train_rows / 16))))))


def auto_numeric_embedding(train_rows: int) -> int:
    """Periodic embeddings paid on 54,000 diamonds and cost on tables of 150-1,800 rows, where the
    scaled values themselves did better (benchmarks/README.md)."""
    return EMBEDDING_SIZE if train_rows >= EMBEDDING_ROWS else 0


def apply_preset(raw: Any) -> Any:
    """A pipeline dict with the preset's values filled in where the file sets none. Anything not a
    dict, or an unknown preset, is left for validation to refuse by name."""
    if not isinstance(raw, dict) or not isinstance(raw.get("model", {}), dict):
        return raw
    bundle = PRESETS.get((raw.get("model") or {}).get("preset", DEFAULT))
    if bundle is None:
        return raw
    out = dict(raw)
    for section, values in bundle.items():
        given = out.get(section)
        if given is None or isinstance(given, dict):
            out[section] = {**values, **(given or {})}
    return out
