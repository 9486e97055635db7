"""The fitted preprocessing state: feature columns with their types and states, and the target.

It is fitted on the training split only, saved as JSON inside model.json, and applied unchanged
at evaluation, batch prediction and serving time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe import features
from dlpipe.errors import ConfigError, DataError
from dlpipe.features.base import Problems
from dlpipe.prepare.target import encode_target, fit_target

if TYPE_CHECKING:
    from dlpipe.spec import FeatureSpec, PipelineSpec


def check_options(name: str, kind: str, override: FeatureSpec | None) -> None:
    """Refuse settings the column's type would silently ignore (`scale` on a category, say)."""
    if override is None:
        return
    given = {k for k, v in override.model_dump(exclude={"type"}).items() if v is not None}
    unused = sorted(given - features.get(kind).options)
    if unused:
        raise ConfigError(
            f"{', '.join(unused)} does not apply to {kind} columns",
            where=f"features.{name}.{unused[0]}",
            fix=f"{kind} columns take {', '.join(sorted(features.get(kind).options)) or 'no options'}",
        )


@dataclass
class Column:
    name: str
    type: str
    reason: str
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Preprocessor:
    task: str
    target: str
    target_state: dict[str, Any]
    columns: list[Column]

    @classmethod
    def fit(
        cls, train: pd.DataFrame, task: str, target: str, types: dict[str, tuple[str, str]], spec: PipelineSpec
    ) -> Preprocessor:
        """Fit every feature's state and the target's on the training rows."""
        columns = []
        for name, (kind, reason) in types.items():
            if kind == "ignore":
                continue
            check_options(name, kind, spec.feature_spec(name))
            state = features.get(kind).fit(train[name], spec.feature_spec(name))
            columns.append(Column(name, kind, reason, state))
        if not columns:
            raise DataError("no usable feature columns: every column was ignored", fix="see profile.json for why")
        return cls(task, target, fit_target(train[target], task), columns)

    @property
    def classes(self) -> list[str] | None:
        return self.target_state.get("classes")

    @property
    def n_outputs(self) -> int:
        """Width of the network's output: 1 for binary and regression, one per class otherwise."""
        classes = self.classes
        return 1 if classes is None or len(classes) == 2 else len(classes)

    def groups(self) -> dict[str, list[Column]]:
        """Columns by network input: one group per tabular type, one per column of a rich type.

        Keys are the type name ("numeric") or "type:column" ("image:photo").
        """
        groups: dict[str, list[Column]] = {}
        for column in self.columns:
            key = f"{column.type}:{column.name}" if features.get(column.type).per_column else column.type
            groups.setdefault(key, []).append(column)
        return groups

    def transform(self, frame: pd.DataFrame, problems: Problems | None = None) -> dict[str, np.ndarray]:
        """Feature arrays keyed by group, in the layout the encoders expect.

        Values a feature type cannot use are recorded in `problems` (zeros stand in for them).
        """
        missing = [c.name for c in self.columns if c.name not in frame.columns]
        if missing:
            raise DataError(
                f"the data lacks {len(missing)} feature column(s) the model needs: {', '.join(missing[:10])}",
                fix="pass a table with the training columns",
            )
        problems = problems if problems is not None else Problems()
        return {
            key: features.get(cols[0].type).transform_many(frame, {c.name: c.state for c in cols}, problems)
            for key, cols in self.groups().items()
        }

    def encode_target(self, column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(encoded target, usable-row mask): class codes, or values standardised by the training spread."""
        values, ok = encode_target(column, self.target_state)
        if self.classes is None:
            values = (values - self.target_state["mean"]) / self.target_state["std"]
        return values, ok

    def decode_regression(self, standardised: np.ndarray) -> np.ndarray:
        return standardised * self.target_state["std"] + self.target_state["mean"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(
            task=data["task"],
            target=data["target"],
            target_state=data["target_state"],
            columns=[Column(**c) for c in data["columns"]],
        )
