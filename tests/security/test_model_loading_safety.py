"""Loading a model never executes code and never reads outside its folder: no unsafe deserialiser in
the source, every loader checks every file's sha256 first, model.json and model.onnx cannot name
files outside the model folder. Every attack here is made on a real packaged model (a copy)."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from dlpipe.cli import main
from dlpipe.errors import ArtifactError
from dlpipe.manifest import MANIFEST, ONNX, REFERENCE, WEIGHTS, manifest_digest
from dlpipe.package import load_model

SRC = Path(__file__).resolve().parents[2] / "src" / "dlpipe"

# --- the source tree: no deserialiser that can run code ---

UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal", "jsonpickle"}
UNSAFE_CALLS = {"read_pickle", "unsafe_load", "full_load", "unsafe_load_all", "full_load_all"}
UNSAFE_BUILTINS = {"eval", "exec", "__import__"}  # as bare names: `net.eval()` is PyTorch's evaluation mode


def unsafe_uses(tree: ast.AST) -> list[str]:
    """What in one module could turn bytes into running code: imports of pickle-like modules, eval or
    exec, pandas' read_pickle, torch.load without weights_only=True, np.load(allow_pickle=True),
    yaml.load with a loader that is not yaml's SafeLoader (checked by the caller: returned as loaders)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [f"import {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        owner = ast.unparse(node.func.value) if isinstance(node.func, ast.Attribute) else ""
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if isinstance(node.func, ast.Name) and name in UNSAFE_BUILTINS:
            found.append(f"{name}()")
        elif name in UNSAFE_CALLS:
            found.append(f"{owner}.{name}()")
        elif name == "load" and owner == "torch" and keywords.get("weights_only") != "True":
            found.append("torch.load() without weights_only=True")
        elif name == "load" and owner in ("np", "numpy") and keywords.get("allow_pickle", "False") != "False":
            found.append("np.load(allow_pickle=...)")
        elif name in ("load", "load_all") and owner == "yaml":
            found.append(f"yaml.{name}(Loader={keywords.get('Loader')})")
    return found


def test_no_unsafe_deserialisation_in_the_source():
    import yaml

    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 100
    offending = {}
    for file in files:
        uses = unsafe_uses(ast.parse(file.read_text(), str(file)))
        module = ".".join(file.relative_to(SRC.parent).with_suffix("").parts)
        for use in list(uses):
            if use.startswith("yaml.load(Loader="):  # allowed when the loader is yaml's SafeLoader or a subclass
                import importlib

                loader = getattr(importlib.import_module(module), use.removeprefix("yaml.load(Loader=")[:-1], None)
                if isinstance(loader, type) and issubclass(loader, yaml.SafeLoader):
                    uses.remove(use)
        if uses:
            offending[module] = uses
    assert offending == {}


def test_the_scan_finds_what_it_looks_for():
    code = (
        "import pickle\nfrom joblib import load\nimport torch, numpy as np, yaml, pandas as pd\n"
        "torch.load('w.pt')\ntorch.load('w.pt', weights_only=False)\ntorch.load('w.pt', weights_only=True)\n"
        "np.load('a.npy', allow_pickle=True)\nnp.load('a.npy')\nyaml.load(s, Loader=yaml.Loader)\n"
        "pd.read_pickle('x')\neval('1')\n"
    )
    assert unsafe_uses(ast.parse(code)) == [
        "import pickle",
        "import joblib",
        "torch.load() without weights_only=True",
        "torch.load() without weights_only=True",
        "np.load(allow_pickle=...)",
        "yaml.load(Loader=yaml.Loader)",
        "pd.read_pickle()",
        "eval()",
    ]


# --- a model folder handed over: tampered files, every entry point ---


@pytest.fixture
def folder(packaged_model, tmp_path) -> Path:
    return Path(shutil.copytree(packaged_model, tmp_path / "model"))


def restamp(folder: Path, change: Callable[[dict], None] | None = None) -> None:
    """Rewrite model.json as an attacker would: `change` applied, the listed files' sha256 and the
    manifest digest recomputed, so only dlpipe's other checks stand in the way."""
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    if change:
        change(manifest)
    for name in manifest["files"]:
        if (folder / name).is_file():
            manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    manifest["manifest_sha256"] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def cli(*args: str) -> Callable[[], None]:
    def run() -> None:
        with pytest.raises(SystemExit) as exit_:
            main(list(args))
        assert exit_.value.code == 2
        raise ArtifactError("exit 2")

    return run


def entry_points(folder: Path, tmp: Path) -> dict[str, Callable[[], object]]:
    """Everything that reads a model folder, each as it is called."""
    from dlpipe import Pipeline
    from dlpipe.monitor.report import Baseline
    from dlpipe.registry import Registry
    from dlpipe.serve.runtime import Runtime

    rows = tmp / "rows.csv"
    pd.DataFrame({"sepal length (cm)": [5.1]}).to_csv(rows, index=False)
    return {
        "load_model": lambda: load_model(folder),
        "server runtime (onnx)": lambda: Runtime(folder, runtime="onnx"),
        "server runtime (torch)": lambda: Runtime(folder, runtime="torch"),
        "dlpipe serve": cli("serve", str(folder), "--port", "9"),
        "dlpipe predict": cli("predict", str(folder), str(rows), "-o", str(tmp / "out.csv")),
        "dlpipe export onnx": cli("export", str(folder), "--format", "onnx", "-o", str(tmp / "x.onnx")),
        "dlpipe export docker": cli("export", str(folder), "--format", "docker", "-o", str(tmp / "docker")),
        "dlpipe export mlflow": cli("export", str(folder), "--format", "mlflow", "-o", str(tmp / "mlflow")),
        "registry": lambda: Registry(tmp / "registry").register(folder),
        "warm start (retrain)": lambda: Pipeline.from_dict(tiny_config()).run(tmp / "runs", warm_start=folder),
        "monitor baseline": lambda: Baseline.from_folder(folder),
        "dlpipe monitor": cli("monitor", str(folder), "--store", f"sqlite:///{tmp / 'store.db'}"),
    }


ENTRY_POINTS = list(entry_points(Path("."), Path(".")))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("tampered", [WEIGHTS, REFERENCE, ONNX, MANIFEST])
def test_every_loader_refuses_a_changed_byte(folder, tmp_path, capsys, entry, tampered):
    if tampered == MANIFEST:  # a changed value inside model.json, the file left valid JSON
        text = (folder / MANIFEST).read_text()
        (folder / MANIFEST).write_text(text.replace('"hidden": 32', '"hidden": 33', 1))
        assert (folder / MANIFEST).read_text() != text
    else:
        flip_byte(folder / tampered)
    with pytest.raises(ArtifactError) as refused:
        entry_points(folder, tmp_path)[entry]()
    message = capsys.readouterr().err if str(refused.value) == "exit 2" else str(refused.value)
    assert "sha256" in message and tampered in message
    assert not (tmp_path / "registry" / "iris").exists() or not any((tmp_path / "registry" / "iris").iterdir())
    assert not any((tmp_path / out).exists() for out in ("x.onnx", "docker", "mlflow", "out.csv", "runs"))


# --- files outside the folder ---


def test_model_json_naming_files_outside_the_folder_is_refused(folder, tmp_path):
    (tmp_path / "x").write_bytes(b"secret")
    (folder / "link.bin").symlink_to(tmp_path / "x")
    for name in ("../x", str(tmp_path / "x"), "/etc/passwd", "link.bin"):
        copy = Path(shutil.copytree(folder, tmp_path / f"case{len(name)}", symlinks=True))
        restamp(copy, lambda m, name=name: m["files"].update({name: ""}))
        with pytest.raises(ArtifactError, match="names a file outside the model folder"):
            load_model(copy)
    (folder / MANIFEST).rename(tmp_path / "elsewhere.json")
    (folder / MANIFEST).symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ArtifactError, match="link to a file outside"):
        load_model(folder)


def test_weights_that_model_json_does_not_list_are_refused(folder):
    restamp(folder, lambda m: m["files"].pop(WEIGHTS))
    with pytest.raises(ArtifactError, match=f"does not list {WEIGHTS}"):
        load_model(folder)


def with_external_data(folder: Path, location: str) -> None:
    """model.onnx rewritten so its largest initializer is read from `location` (external data)."""
    import onnx
    from onnx.external_data_helper import set_external_data

    proto = onnx.load(str(folder / ONNX))
    tensor = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    raw = tensor.raw_data
    set_external_data(tensor, location=location, offset=0, length=len(raw))
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    target = Path(location) if Path(location).is_absolute() else folder / location
    target.write_bytes(raw)  # the right bytes even: what is refused is where they are read from
    (folder / ONNX).write_bytes(proto.SerializeToString())


@pytest.mark.parametrize("where", ["../secret.bin", "ABSOLUTE", "unlisted.bin"])
def test_onnx_external_data_outside_the_listed_files_is_refused(folder, tmp_path, capsys, where):
    location = str(tmp_path / "secret.bin") if where == "ABSOLUTE" else where
    with_external_data(folder, location)
    restamp(folder)
    for entry in ("load_model", "server runtime (onnx)", "dlpipe serve", "dlpipe export onnx", "registry"):
        with pytest.raises(ArtifactError) as refused:
            entry_points(folder, tmp_path)[entry]()
        message = capsys.readouterr().err if str(refused.value) == "exit 2" else str(refused.value)
        assert "reads tensor" in message and location in message and "refused" in message, (entry, message)


def test_onnx_external_data_in_a_listed_file_still_serves(folder, packaged_model):
    from dlpipe.serve.runtime import Runtime

    with_external_data(folder, "model.onnx.data")
    restamp(folder, lambda m: m["files"].update({"model.onnx.data": ""}))
    frame = pd.read_parquet(folder / REFERENCE).iloc[:5, :4]
    expected = Runtime(packaged_model, runtime="onnx").outputs(frame)
    np.testing.assert_allclose(Runtime(folder, runtime="onnx").outputs(frame), expected, rtol=1e-6)


def test_files_the_manifest_does_not_list_do_not_travel(folder, tmp_path):
    from dlpipe.export.docker import export_docker
    from dlpipe.registry import Registry

    (tmp_path / "id_rsa").write_text("PRIVATE KEY")
    (folder / "notes.txt").symlink_to(tmp_path / "id_rsa")
    version = Registry(tmp_path / "registry").register(folder)
    export_docker(folder, tmp_path / "docker")
    for copy in (version.folder, tmp_path / "docker" / "model"):
        assert sorted(p.name for p in copy.iterdir()) == sorted([MANIFEST, WEIGHTS, REFERENCE, ONNX])
        assert load_model(copy).name == "iris"
