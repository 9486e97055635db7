"""dlpipe: from data and a goal to a tested, deployable deep learning model.

`Pipeline`, `load_model` and `Client` are loaded on first use, so importing dlpipe (and `dlpipe --help`)
does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "Pipeline", "__version__", "load_model"]

if TYPE_CHECKING:
    from dlpipe.client import Client
    from dlpipe.package import load_model
    from dlpipe.pipeline import Pipeline


def __getattr__(name: str) -> Any:
    if name == "Pipeline":
        from dlpipe.pipeline import Pipeline

        return Pipeline
    if name == "load_model":
        from dlpipe.package import load_model

        return load_model
    if name == "Client":
        from dlpipe.client import Client

        return Client
    raise AttributeError(f"module 'dlpipe' has no attribute {name!r}")
