"""Embeddings of text, image and audio inputs: what their drift is measured on.

The model's own encoder for the column turns each value into a vector. At packaging the training
sample's vectors go into the model folder (`reference_embeddings.safetensors`); the server's
writer stores each logged row's vector beside the value's hash (or the text), so `dlpipe monitor`
can compare the two with a domain classifier without the raw files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from dlpipe.prepare.preprocessor import Preprocessor

EMBEDDED = ("text", "image", "audio")
FILE = "reference_embeddings.safetensors"
BATCH = 256
DIGITS = 4  # decimals kept in the store: a drift test needs no more


def embedded_groups(preprocessor: Preprocessor) -> dict[str, str]:
    """Input group -> column, for the columns whose drift is measured on embeddings."""
    return {key: cols[0].name for key, cols in preprocessor.groups().items() if cols[0].type in EMBEDDED}


def embed_inputs(net: torch.nn.Module, preprocessor: Preprocessor, inputs: dict[str, np.ndarray]) -> dict:
    """Column -> (rows, dims) float32 array: each embedded column's encoder output."""
    import torch

    groups = embedded_groups(preprocessor)
    if not groups:
        return {}
    out = {}
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for key, column in groups.items():
                encoder = net.encoders[net.keys.index(key)]
                values = inputs[key]
                chunks = [
                    encoder(torch.from_numpy(np.ascontiguousarray(values[i : i + BATCH])))
                    for i in range(0, len(values), BATCH)
                ]
                out[column] = torch.cat(chunks).float().numpy()
    finally:
        net.train(was_training)
    return out


def embed_frame(net: torch.nn.Module, preprocessor: Preprocessor, frame: pd.DataFrame) -> dict:
    """Embeddings of raw rows (as a request sent them); rows that cannot be used are not expected here."""
    if not embedded_groups(preprocessor):
        return {}
    return embed_inputs(net, preprocessor, preprocessor.transform(frame))


def as_stored(vector: np.ndarray) -> list[float]:
    return np.round(vector.astype(np.float64), DIGITS).tolist()


def stored_matrix(values: Any) -> np.ndarray:
    """The vectors stored with a column's logged values (rows without one are left out)."""
    vectors = [v["embedding"] for v in values if isinstance(v, dict) and isinstance(v.get("embedding"), list)]
    if not vectors:
        return np.zeros((0, 0))
    width = len(vectors[0])
    return np.asarray([v for v in vectors if len(v) == width], dtype=np.float32)
