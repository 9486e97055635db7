"""`dlpipe export MODEL --format mlflow`: an MLflow pyfunc model folder.

    MLmodel                 the flavor: python_function, loader dlpipe.export.mlflow_pyfunc
    model/                  the dlpipe model folder (checked on load as always)
    code/dlpipe/            the dlpipe package as installed here (MLflow puts code/ on sys.path)
    requirements.txt        the versions installed here, torch from PyTorch's CPU wheels
    python_env.yaml

`mlflow.pyfunc.load_model(folder).predict(frame)` then gives dlpipe's predictions: `prediction`,
and `proba_<class>` for classifiers. No pickle: MLflow imports the loader module by name.
"""

from __future__ import annotations

import json
import platform
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml

import dlpipe
from dlpipe.export.docker import requirements

COLUMN_TYPES = {"numeric": "double", "binary": "string", "category": "string", "text": "string"}


def export_mlflow(model: Path, out: Path) -> list[str]:
    """Write the folder (built beside `out`, then renamed: never half-written); returns its files."""
    from dlpipe.errors import ConfigError
    from dlpipe.manifest import copy_model, find_model_folder, read_manifest

    folder = find_model_folder(model)
    manifest = read_manifest(folder)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty", fix="pass -o a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}-{uuid.uuid4().hex[:8]}")
    try:
        copy_model(folder, manifest, tmp / "model")
        package = Path(dlpipe.__file__).parent
        shutil.copytree(package, tmp / "code" / "dlpipe", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (tmp / "requirements.txt").write_text(requirements())
        python = platform.python_version()
        env = {"python": python, "build_dependencies": ["pip"], "dependencies": ["-r requirements.txt"]}
        (tmp / "python_env.yaml").write_text(yaml.safe_dump(env, sort_keys=False))
        (tmp / "MLmodel").write_text(yaml.safe_dump(mlmodel(manifest, python), sort_keys=False))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def mlmodel(manifest: dict, python: str) -> dict:
    """The MLmodel file: one python_function flavor and a column signature."""
    columns = manifest["preprocessor"]["columns"]
    inputs = [{"type": COLUMN_TYPES.get(c["type"], "string"), "name": c["name"], "required": False} for c in columns]
    classes = manifest["preprocessor"].get("target_state", {}).get("classes")
    outputs = [{"type": "string" if classes else "double", "name": "prediction", "required": True}]
    outputs += [{"type": "double", "name": f"proba_{c}", "required": True} for c in classes or []]
    return {
        "flavors": {
            "python_function": {
                "loader_module": "dlpipe.export.mlflow_pyfunc",
                "data": "model",
                "code": "code",
                "env": {"virtualenv": "python_env.yaml"},
                "python_version": python,
            }
        },
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "signature": {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs), "params": None},
        "metadata": {"dlpipe_name": manifest["name"], "dlpipe_version": manifest.get("version", "1")},
    }
