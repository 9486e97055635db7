"""dlpipe: from data and a goal to a tested, deployable deep learning model.

`Pipeline` and `load_model` are loaded on first use, so importing dlpipe (and `dlpipe --help`)
does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Pipeline", "__version__", "load_model"]

if TYPE_CHECKING:
    from dlpipe.package import load_model
    from dlpipe.pipeline import Pipeline


def __getattr__(name: str) -> Any:
    if name == "Pipeline":
        from dlpipe.pipeline import Pipeline

        return Pipeline
    if name == "load_model":
        from dlpipe.package import load_model

        return load_model
    raise AttributeError(f"module 'dlpipe' has no attribute {name!r}")
