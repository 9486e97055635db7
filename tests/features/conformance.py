"""Checks every feature type must pass (the conformance suite), shared by the per-type test modules.

Tabular types run them in test_registry.py; a type that needs files (images, audio) runs them in
its own module with samples it generates. `test_registry.test_every_type_has_conformance_tests`
refuses a registered type that no module covers.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import torch

from dlpipe.features.base import FeatureType, Problems
from dlpipe.spec import FeatureSpec, ModelSpec


def check_state_round_trips(feature: FeatureType, train: pd.Series, later: pd.Series, spec: FeatureSpec) -> None:
    """State is JSON and transforming with the restored state gives identical arrays."""
    state = feature.fit(train, spec)
    restored = json.loads(json.dumps(state))
    a = feature.transform_many(later.to_frame("c"), {"c": state}, Problems())
    b = feature.transform_many(later.to_frame("c"), {"c": restored}, Problems())
    np.testing.assert_array_equal(a, b)


def check_bad_values_by_policy(
    feature: FeatureType, train: pd.Series, later: pd.Series, spec: FeatureSpec, bad_rows: set[int]
) -> Problems:
    """Bad values neither raise nor misalign rows: the output is finite, one row per input, and the
    rows the type cannot use (`bad_rows`, empty for types that fill instead) are reported."""
    state = feature.fit(train, spec)
    problems = Problems()
    out = feature.transform_many(later.to_frame("c"), {"c": state}, problems)
    assert out.shape[0] == len(later)
    assert np.isfinite(np.asarray(out, dtype=float)).all()
    assert set(problems.rows) == bad_rows, problems.listed
    return problems


def check_fit_uses_train_only(feature: FeatureType, train: pd.Series, other: pd.Series, spec: FeatureSpec) -> None:
    """Fitting depends on the training values alone: the same state whatever else exists."""
    assert json.dumps(feature.fit(train, spec), sort_keys=True) == json.dumps(
        feature.fit(train.copy(), spec), sort_keys=True
    )
    assert json.dumps(feature.fit(train, spec), sort_keys=True) != json.dumps(
        feature.fit(other, spec), sort_keys=True
    ), "the state should reflect the data it was fitted on"


def check_encoder_shape(
    feature: FeatureType, train: pd.Series, later: pd.Series, spec: FeatureSpec, model: ModelSpec | None = None
) -> Any:
    """The encoder maps the transformed batch to (rows, out_dim) and every parameter gets a gradient."""
    names = ["a"] if feature.per_column else ["a", "b"]
    states = {n: feature.fit(train, spec) for n in names}
    frame = pd.DataFrame({n: later.to_numpy() for n in names})
    batch = torch.from_numpy(np.ascontiguousarray(feature.transform_many(frame, states, Problems())))
    encoder = feature.encoder(list(states.values()), model or ModelSpec(numeric_embedding=4))
    encoder.train()
    out = encoder(batch)
    assert out.shape == (len(later), encoder.out_dim)
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    if trainable:
        out.float().pow(2).sum().backward()
        assert all(p.grad is not None for p in trainable)
    encoder.eval()
    with torch.no_grad():
        assert torch.equal(encoder(batch), encoder(batch)), "evaluation must be deterministic (no augmentation)"
    return encoder


def check_inferred(feature: FeatureType, train: pd.Series) -> None:
    """The data alone reveals the type: inference picks it for a typical training column."""
    from dlpipe.features import infer_column

    kind, reason = infer_column(train)
    assert kind == feature.name, f"inferred {kind} ({reason}) for a typical {feature.name} column"


def check_save_load_round_trip(
    feature: FeatureType, train: pd.Series, spec: FeatureSpec, model: ModelSpec | None, tmp: Any
) -> None:
    """An encoder rebuilt from the saved state (JSON) and weights (safetensors) gives identical outputs."""
    from safetensors.torch import load_file, save_file

    model = model or ModelSpec(numeric_embedding=4)
    state = feature.fit(train, spec)
    batch = torch.from_numpy(
        np.ascontiguousarray(feature.transform_many(train.to_frame("c"), {"c": state}, Problems()))
    )
    torch.manual_seed(0)
    encoder = feature.encoder([state], model)
    with torch.no_grad():  # move every weight off its initial value, as training would
        for p in encoder.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    encoder.eval()
    path = tmp / f"{feature.name}.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(path))
    torch.manual_seed(1)  # a different initialisation: only the loaded weights may matter
    restored = feature.encoder([json.loads(json.dumps(state))], model)
    restored.load_state_dict(load_file(str(path)))
    restored.eval()
    with torch.no_grad():
        assert torch.equal(encoder(batch), restored(batch))


def run_all(
    feature: FeatureType,
    train: pd.Series,
    later: pd.Series,
    other: pd.Series,
    spec: FeatureSpec | None = None,
    bad_rows: set[int] = frozenset(),
    model: ModelSpec | None = None,
) -> None:
    import tempfile
    from pathlib import Path

    spec = spec or FeatureSpec()
    check_inferred(feature, train)
    check_state_round_trips(feature, train, later, spec)
    check_bad_values_by_policy(feature, train, later, spec, set(bad_rows))
    check_fit_uses_train_only(feature, train, other, spec)
    check_encoder_shape(feature, train, train, spec, model)
    with tempfile.TemporaryDirectory() as tmp:
        check_save_load_round_trip(feature, train, spec, model, Path(tmp))
