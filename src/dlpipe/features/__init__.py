"""The feature-type registry, and the inference that picks a type (or a reason to ignore) per column."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from dlpipe.errors import ConfigError
from dlpipe.features.audio import AUDIO_EXTENSIONS, Audio
from dlpipe.features.base import FeatureType
from dlpipe.features.binary import Binary
from dlpipe.features.category import MAX_CATEGORY_LEVELS, Category, normalise
from dlpipe.features.datetime import Datetime, date_share
from dlpipe.features.image import IMAGE_EXTENSIONS, Image
from dlpipe.features.numeric import Numeric, numeric_share
from dlpipe.features.text import Text

REGISTRY: dict[str, FeatureType] = {
    t.name: t for t in (Numeric(), Category(), Binary(), Datetime(), Text(), Image(), Audio())
}
ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key|index|idx)($|[_\W])|^(id|uuid)[a-z]*$", re.IGNORECASE)
TEXT_MIN_WORDS = 4


def get(name: str) -> FeatureType:
    """The registered feature type called `name`."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown feature type {name!r}", fix=f"use one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def infer_column(column: pd.Series) -> tuple[str, str]:
    """(type, reason) for a column; type 'ignore' when it should not be a feature.

    The rules are ordered (an ID-like column is numbers too), so they live here, each statistic
    computed once, rather than spread over the types.
    """
    present = column.dropna()
    if present.empty:
        return "ignore", "every value is missing"
    # only an object column can hold them; the test costs a Python call per row
    if present.dtype == object and present.map(lambda v: isinstance(v, list | dict | tuple | set | np.ndarray)).any():
        return "ignore", "nested values (lists or objects): flatten them into columns to use them"
    if pd.api.types.is_datetime64_any_dtype(present):
        return "datetime", "dates and times"
    files = file_kind(present)
    if files:
        return files
    distinct = present.nunique()
    if distinct == 1:
        return "ignore", f"constant: every value is {present.iloc[0]!r}"
    if pd.api.types.is_bool_dtype(present) or distinct == 2:
        values = normalise(present).unique()
        return "binary", f"two values: {', '.join(sorted(map(str, values)))}" if len(values) == 2 else "two values"
    share = numeric_share(column)
    if share >= 0.95:
        if _is_id_like_numbers(column, present):
            return "ignore", "ID-like: a distinct whole number per row"
        note = "" if share == 1.0 else f" ({1 - share:.1%} unparseable values treated as missing)"
        return "numeric", f"numbers with {distinct} distinct values{note}"
    dates = date_share(present)
    if dates >= 0.95:
        note = "" if dates == 1.0 else f" ({1 - dates:.1%} unparseable values treated as missing)"
        return "datetime", f"dates and times{note}"
    text = normalise(present)
    words = text.str.split().str.len().mean()
    unique_share = distinct / len(present)
    if words >= TEXT_MIN_WORDS and unique_share > 0.3:
        return "text", f"free text ({words:.0f} words on average, {unique_share:.0%} distinct)"
    if unique_share > 0.9 and len(present) > 20:
        return "ignore", "ID-like: a distinct value per row"
    if distinct <= MAX_CATEGORY_LEVELS or unique_share < 0.5:
        reason = (
            f"{distinct} distinct levels"
            if distinct <= MAX_CATEGORY_LEVELS
            else f"{distinct} distinct levels (rare ones merged)"
        )
        return "category", reason
    return "ignore", f"{distinct} distinct values in {len(present)} rows: too many for a category"


def file_kind(present: pd.Series) -> tuple[str, str] | None:
    """(type, reason) when nearly every value is a path to an image or audio file."""
    if not (pd.api.types.is_object_dtype(present) or pd.api.types.is_string_dtype(present)):
        return None
    values = present.astype(str).str.strip().str.lower()
    if values.str.match(r"^[a-z][a-z0-9+.-]*://").mean() > 0.5:
        return None  # URLs: dlpipe reads local files, and never downloads
    suffixes = values.str.extract(r"(\.[a-z0-9]{2,5})$")[0]
    for kind, extensions in (("image", IMAGE_EXTENSIONS), ("audio", AUDIO_EXTENSIONS)):
        share = float(suffixes.isin(extensions).mean())
        if share >= 0.9:
            return kind, f"paths to {kind} files ({share:.0%} with an {kind} extension)"
    return None


def _is_id_like_numbers(column: pd.Series, present: pd.Series) -> bool:
    values = pd.to_numeric(present, errors="coerce").dropna()
    if len(values) < 20 or values.nunique() != len(values) or not (values % 1 == 0).all():
        return False
    named = bool(ID_NAME.search(str(column.name)))
    # a row counter, or a sample of one (the training split holds ~70% of a contiguous range)
    dense = (values.max() - values.min() + 1) <= 2 * len(values)
    return named or bool(dense)


__all__ = ["REGISTRY", "FeatureType", "file_kind", "get", "infer_column"]
