"""`dlpipe export MODEL --format docker`: a folder that builds an image serving the model.

The folder holds the model, the dlpipe package as installed here (it is not on PyPI), a
requirements.txt pinning the versions installed here, and a Dockerfile whose command is
`python -m dlpipe.cli serve model --host 0.0.0.0 --port 8000`, run from the folder itself.
"""

from __future__ import annotations

import re
import shutil
from importlib import metadata
from pathlib import Path

import dlpipe

# not needed to serve: training, tuning and export tools
NOT_SERVING = {"optuna", "cmaes", "onnx", "onnxscript"}
PORT = 8000


def export_docker(model: Path, out: Path) -> list[str]:
    """Write the folder; returns the files written, relative to `out`. `out` must not exist or be empty."""
    from dlpipe.errors import ConfigError
    from dlpipe.manifest import copy_model, find_model_folder, read_manifest

    folder = find_model_folder(model)
    manifest = read_manifest(folder)  # refuse a damaged model before copying it anywhere
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty", fix="pass -o a new folder")
    out.mkdir(parents=True, exist_ok=True)
    copy_model(folder, manifest, out / "model")
    package = Path(dlpipe.__file__).parent
    shutil.copytree(package, out / "dlpipe", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (out / "requirements.txt").write_text(requirements())
    (out / "Dockerfile").write_text(dockerfile(manifest["name"]))
    (out / ".dockerignore").write_text("**/__pycache__\n*.pyc\n")
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def requirements() -> str:
    """dlpipe's dependencies pinned to the versions installed here; torch from the CPU wheels."""
    lines = [
        "# the versions this model was exported with; torch comes from PyTorch's CPU wheels",
        "--extra-index-url https://download.pytorch.org/whl/cpu",
    ]
    for requirement in metadata.requires("dlpipe") or []:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
        if name.lower() in NOT_SERVING:
            continue
        lines.append(f"{name}=={metadata.version(name)}")
    return "\n".join(lines) + "\n"


def dockerfile(name: str) -> str:
    tag = name.lower()
    return f"""# Serves the dlpipe model {name!r}
#   docker build -t {tag} . && docker run -p {PORT}:{PORT} {tag}
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY dlpipe dlpipe
COPY model model
ENV PYTHONPATH=/srv OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
EXPOSE {PORT}
HEALTHCHECK CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:{PORT}/v2/health/ready')"
CMD ["python", "-m", "dlpipe.cli", "serve", "model", "--host", "0.0.0.0", "--port", "{PORT}"]
"""
