"""Texts (placeholder: being written)."""

from __future__ import annotations

from dlpipe.features.base import FeatureType


class Text(FeatureType):
    name = "text"
    per_column = True
