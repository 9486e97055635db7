"""Conformance suite every feature type must pass, and type inference."""

from __future__ import annotations

from pathlib import Path

import conformance
import numpy as np
import pandas as pd
import pytest

from dlpipe.features import REGISTRY, infer_column
from dlpipe.spec import FeatureSpec

# (training values, values met later that must not break anything, other training values)
SAMPLES = {
    "numeric": (
        pd.Series([1.5, 2.0, np.nan, 4.0, 10.0, 3.0] * 5, name="x"),
        pd.Series([np.inf, -1e12, None, "garbage", 2.5, "7"], name="x"),
        pd.Series([100.0, 200.0, 300.0] * 5, name="x"),
    ),
    "category": (
        pd.Series(["a", "b", "c", "a", None, "b"] * 5 + ["rare"], name="c"),
        pd.Series(["a", "never seen", None, 3.0, " b ", ""], name="c"),
        pd.Series(["x", "y"] * 5, name="c"),
    ),
    "binary": (
        pd.Series(["yes", "no", "yes", None, "no", "yes"] * 5, name="b"),
        pd.Series(["yes", "maybe", None, 1, "NO", "no"], name="b"),
        pd.Series(["up", "down"] * 5, name="b"),
    ),
    "datetime": (
        pd.Series(["2021-01-03", "2022-05-06 13:00", None, "2020-12-31 23:59"] * 5, name="d"),
        pd.Series(["2030-02-29", "not a date", None, 12, "2021-06-01T10:00:00+02:00", ""], name="d"),
        pd.Series(["1990-01-01", "1991-07-01"] * 5, name="d"),
    ),
}
# types whose samples are files: their own modules run the same checks
FILE_TYPES = {"image": "test_image", "audio": "test_audio", "text": "test_text"}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_conformance(kind):
    train, later, other = SAMPLES[kind]
    conformance.run_all(REGISTRY[kind], train, later, other)


def test_every_type_has_conformance_tests():
    for kind in set(REGISTRY) - set(SAMPLES):
        module = Path(__file__).with_name(f"{FILE_TYPES.get(kind, 'missing')}.py")
        assert module.exists(), f"feature type {kind!r} has no conformance tests"
        assert "conformance.run_all" in module.read_text(), f"{module.name} does not run the conformance suite"


def test_numeric_statistics_and_missing_indicator():
    state = REGISTRY["numeric"].fit(pd.Series([1.0, 2.0, 3.0, np.nan]), FeatureSpec(missing="mean"))
    assert state["fill"] == 2.0
    out = REGISTRY["numeric"].transform(pd.Series([np.nan, 2.0]), state)
    assert out[0, 1] == 1.0 and out[1, 1] == 0.0  # indicator
    assert out[1, 0] == pytest.approx(0.0)  # the mean scales to zero


@pytest.mark.parametrize("scale", ["standard", "robust", "quantile", "none"])
def test_numeric_scalings_are_monotone(scale):
    values = pd.Series(np.random.default_rng(0).lognormal(size=200))
    state = REGISTRY["numeric"].fit(values, FeatureSpec(scale=scale))
    out = REGISTRY["numeric"].transform(values.sort_values(), state)[:, 0]
    assert (np.diff(out) >= -1e-12).all()


def test_category_merges_rare_levels_and_keeps_unseen_apart_from_missing():
    state = REGISTRY["category"].fit(pd.Series(["a"] * 5 + ["b"] * 3 + ["once"]), FeatureSpec(min_frequency=2))
    assert state["levels"] == ["a", "b"] and state["merged_levels"] == 1
    codes = REGISTRY["category"].transform(pd.Series(["a", "once", "new", None]), state)
    assert codes[1] == codes[2] == 1  # rare and unseen share the bucket
    assert codes[3] == 0 and codes[0] >= 2


def test_category_integral_floats_match_ints():
    state = REGISTRY["category"].fit(pd.Series([1.0, 2.0, 3.0, np.nan] * 3), FeatureSpec())
    np.testing.assert_array_equal(
        REGISTRY["category"].transform(pd.Series([1, 2, 3]), state),
        REGISTRY["category"].transform(pd.Series([1.0, 2.0, 3.0]), state),
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (list(range(100)), "ignore"),  # a row counter
        ([f"id-{i:05d}" for i in range(100)], "ignore"),
        (["same"] * 50, "ignore"),
        ([None] * 50, "ignore"),
        (["yes", "no"] * 25, "binary"),
        ([1.5, 2.25, 3.0, 8.5, 1.1] * 20, "numeric"),
        (["red", "green", "blue", "red"] * 25, "category"),
        ([f"word{i % 7} word{i % 11} word{i % 13} word{i % 5} end{i}" for i in range(100)], "text"),
        (["2024-01-05", "2023-12-31", "2024-02-29 08:15"] * 10, "datetime"),
        ([f"photos/{i}.JPG" for i in range(30)], "image"),
        ([f"clips/{i}.wav" for i in range(30)], "audio"),
        ([f"https://cdn.example.com/p/{i}.jpg" for i in range(30)], "ignore"),  # never downloaded
    ],
)
def test_inference(values, expected):
    kind, reason = infer_column(pd.Series(values, name="col"))
    assert kind == expected, reason
    assert reason


def test_id_named_integer_column_is_ignored_even_when_shuffled():
    ids = np.random.default_rng(1).permutation(np.arange(1000, 1100) * 7)
    kind, reason = infer_column(pd.Series(ids, name="customer_id"))
    assert kind == "ignore" and "ID" in reason


def test_a_text_fill_value_for_a_numeric_column_is_a_config_error():
    from dlpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="fill_value"):
        REGISTRY["numeric"].fit(pd.Series([1.0, None], name="x"), FeatureSpec(missing="constant", fill_value="abc"))
