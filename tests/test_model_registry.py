"""The model registry: versions with lineage, aliases, references wherever a model is taken,
concurrent alias moves, and a registering process killed at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import pytest
import yaml

from conftest import dlpipe, tiny_config
from dlpipe.manifest import read_manifest
from dlpipe.package import load_model
from dlpipe.pipeline import Pipeline
from dlpipe.registry import Registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return Pipeline.from_dict(tiny_config()).run(tmp_path_factory.mktemp("runs")).model_folder


def test_versions_aliases_and_references(model, tmp_path, monkeypatch):
    registry = Registry(tmp_path / "reg")
    first = registry.register(model, config_hash="c1", data_fingerprint="d1")
    second = registry.register(model, parent=1)
    assert (first.version, second.version, second.parent) == (1, 2, 1)
    assert read_manifest(second.folder)["version"] == "2"  # the copy knows its version, digest still valid
    assert not os.access(second.folder / "model.json", os.W_OK) or os.geteuid() == 0
    assert oct(second.folder.stat().st_mode & 0o777) == "0o555"
    assert registry.set_alias("iris", 1) is None and registry.set_alias("iris", 2) == 1
    assert [v.aliases for v in registry.versions("iris")] == [[], ["champion"]]
    monkeypatch.setenv("DLPIPE_REGISTRY", str(tmp_path / "reg"))
    assert load_model("models:/iris@champion").manifest["version"] == "2"
    assert load_model("models:/iris/1").manifest["version"] == "1"
    for bad, expected in [("models:/iris/9", "no version 9"), ("models:/iris@canary", "no alias 'canary'")]:
        with pytest.raises(Exception, match=expected):
            load_model(bad)


def test_cli_promote_rollback_delete(model, tmp_path):
    reg = str(tmp_path / "reg")
    registry = Registry(reg)
    for _ in range(3):
        registry.register(model)
    assert dlpipe("models", "promote", "iris", "1", "--registry", reg).returncode == 0
    assert "from version 1 to version 3" in dlpipe("models", "promote", "iris", "3", "--registry", reg).stdout
    back = dlpipe("models", "rollback", "iris", "--registry", reg)
    assert back.returncode == 0 and "from version 3 to version 1" in back.stdout
    assert registry.alias("iris", "champion").version == 1
    nothing = dlpipe("models", "rollback", "iris", "--registry", reg)
    assert nothing.returncode == 2 and "no earlier version" in nothing.stderr
    refused = dlpipe("models", "delete", "iris", "1", "--registry", reg)
    assert refused.returncode == 2 and "champion" in refused.stderr
    assert dlpipe("models", "delete", "iris", "2", "--registry", reg).returncode == 0
    listed = dlpipe("models", "list", "--registry", reg).stdout
    assert "champion" in listed and [v.version for v in registry.versions()] == [1, 3]
    assert dlpipe("models", "delete", "iris", "3", "--registry", reg).returncode == 0
    assert registry.register(model).version == 4  # a deleted version's number is never reused
    shown = json.loads(dlpipe("models", "show", "iris", "4", "--registry", reg).stdout)
    assert shown["reference"] == "models:/iris/4" and "accuracy" in shown["test"]
    env_predict = dlpipe("models", "promote", "iris", "9", "--registry", reg)
    assert env_predict.returncode == 2 and "no version 9" in env_predict.stderr


def _promote_many(root: str, versions: list[int]) -> int:
    registry = Registry(root)
    for v in versions:
        registry.set_alias("iris", v)
    return len(versions)


def test_concurrent_promotes_never_corrupt_the_index(model, tmp_path):
    registry = Registry(tmp_path / "reg")
    for _ in range(3):
        registry.register(model)
    plans = [[1, 2, 3] * 10, [3, 2, 1] * 10, [2, 3] * 15]
    with ProcessPoolExecutor(3) as pool:
        assert sum(pool.map(_promote_many, [str(registry.root)] * 3, plans)) == 90
    import sqlite3

    with sqlite3.connect(registry.root / "index.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM alias_history").fetchone()[0] == 90
        assert db.execute("SELECT COUNT(*) FROM aliases").fetchone()[0] == 1
    assert registry.alias("iris", "champion").version in (1, 2, 3)


REGISTER_FOREVER = """
import sys
from dlpipe.registry import Registry
registry = Registry(sys.argv[1])
while True:
    registry.register(sys.argv[2])
"""


def test_a_registering_process_killed_at_random_leaves_only_complete_versions(model, tmp_path):
    root = tmp_path / "reg"
    rng = random.Random(7)
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", REGISTER_FOREVER, str(root), str(model)])
        time.sleep(rng.uniform(0.8, 2.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
    registry = Registry(root)
    versions = registry.versions("iris")
    assert versions, "nothing was registered before the kills"
    for version in versions:
        assert read_manifest(version.folder)["version"] == str(version.version)  # complete and intact
    listed = {str(v.version) for v in versions}
    leftovers = {p.name for p in (root / "iris").iterdir()} - listed
    assert all(name.startswith(".incoming-") or name.isdigit() for name in leftovers)
    after = registry.register(model)
    assert after.version == max(v.version for v in versions) + 1 and read_manifest(after.folder)


def test_dlpipe_run_registers_a_model_that_meets_its_goal(tmp_path):
    config = tiny_config(problem={"goal": {"accuracy": 0.5}})
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    first = dlpipe("run", str(tmp_path / "p.yaml"), "--run-dir", str(tmp_path / "runs"), "-q")
    assert first.returncode == 0 and "registered models:/iris/1" in first.stdout and "champion" in first.stdout
    second = dlpipe("run", str(tmp_path / "p.yaml"), "--run-dir", str(tmp_path / "runs"), "-q")
    assert "registered models:/iris/2" in second.stdout and "champion stays version 1" in second.stdout
    registry = Registry(tmp_path / "dlpipe-registry")
    v2 = registry.get("iris", 2)
    assert v2.parent == 1 and v2.config_hash and v2.data_fingerprint and v2.run
    assert registry.get("iris", 1).data_fingerprint == v2.data_fingerprint
    missed = tiny_config(problem={"goal": {"log_loss": 0.00001}})
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(missed))
    done = dlpipe("run", str(tmp_path / "m.yaml"), "--run-dir", str(tmp_path / "runs"), "-q")
    assert done.returncode == 3 and "registered" not in done.stdout
    assert len(registry.versions("iris")) == 2
