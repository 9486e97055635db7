"""The pipeline file: its models (`models.py`) and how it is read and checked (`loading.py`)."""

from dlpipe.spec.loading import load_spec, parse_yaml, validate_spec
from dlpipe.spec.models import (
    Augment,
    BuiltinSource,
    Data,
    FeatureSpec,
    FileSource,
    FolderSource,
    ModelSpec,
    PipelineSpec,
    Problem,
    Split,
    SqlSource,
    Training,
    json_schema,
)
from dlpipe.spec.monitoring import Monitoring
from dlpipe.spec.presets import auto_batch_size
from dlpipe.spec.retrain import Retrain
from dlpipe.spec.serving import Serving
from dlpipe.spec.tracking import Tracking
from dlpipe.spec.tuning import Dimension, Tuning, parse_duration

__all__ = [
    "Augment",
    "BuiltinSource",
    "Data",
    "Dimension",
    "FeatureSpec",
    "FileSource",
    "FolderSource",
    "ModelSpec",
    "Monitoring",
    "PipelineSpec",
    "Problem",
    "Retrain",
    "Serving",
    "Split",
    "SqlSource",
    "Tracking",
    "Training",
    "Tuning",
    "auto_batch_size",
    "json_schema",
    "load_spec",
    "parse_duration",
    "parse_yaml",
    "validate_spec",
]
