"""What every section of the pipeline file shares: strict models, whole numbers, and the error a
cross-field check raises at one key."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Strict

# whole numbers exactly: YAML reads `yes`/`no` as booleans, which a lax int would take as 1/0
Whole = Annotated[int, Strict()]
SEED_LIMIT = 2**32  # numpy and scikit-learn refuse seeds outside [0, 2**32)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class AtKey(ValueError):
    """A cross-field check's complaint about one key (dotted, relative to the model that raises it).

    pydantic reports a model validator's error at the model itself; the key lets the error name
    the setting to change and its line.
    """

    def __init__(self, key: str | tuple[str, ...], message: str) -> None:
        super().__init__(message)
        # a tuple keeps a key that holds dots itself (a tuning path such as `model.dropout`) whole
        self.key = key if isinstance(key, tuple) else tuple(key.split("."))
