"""A full disk during `dlpipe run`: the run folder and the registry on a small tmpfs, sized so the
disk fills before training, during training, during packaging, or while registering. The run
stops with one clear line and exit 2, leaves nothing half-written where it would be read, and
once space is freed `--resume` finishes it.

Mounting needs root (or CAP_SYS_ADMIN); elsewhere the test skips, unless DLPIPE_REQUIRE_TMPFS=1.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import cli, tiny_config
from dlpipe.errors import ArtifactError
from dlpipe.manifest import REFERENCE
from dlpipe.package import load_model
from dlpipe.registry import INDEX, Registry
from dlpipe.runs import COMPLETE, FAILED, INTERRUPTED, list_runs

CONFIG = tiny_config(
    "digits",
    problem={"goal": {"accuracy": 0.5}},
    model={"hidden": 16, "layers": 1},
    training={"epochs": 4, "batch_size": 64, "threads": 1},
)
# the run's files fill the disk at: profile.json (61 KB), the second checkpoint write (2 x 60 KB),
# the model folder (223 KB, reference.parquet most of it), the registry's copy of it
SIZES = {"before training": "48k", "training": "160k", "packaging": "280k", "registering": "640k"}


class SmallDisk:
    """A tmpfs of a given size at `path`, mounted again at another size by `resize`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()

    def mount(self, size: str, *options: str) -> None:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join([*options, f"size={size}"]), "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            reason = f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}"
            if os.environ.get("DLPIPE_REQUIRE_TMPFS") == "1":
                pytest.fail(reason)
            pytest.skip(reason)

    def resize(self, size: str) -> None:
        self.mount(size, "remount")

    def leftovers(self) -> list[str]:
        """Temporary files and folders of writes that did not finish."""
        found = self.path.rglob("*")
        return [str(p.relative_to(self.path)) for p in found if p.name.startswith(".") or p.name.endswith(".tmp")]


@pytest.fixture
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path / "disk")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk.path)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("stage", SIZES)
def test_a_full_disk_is_one_clear_error_and_leaves_nothing_half_written(stage, small_disk, tmp_path, capsys):
    small_disk.mount(SIZES[stage])
    runs = small_disk.path / "runs"
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    code = cli("run", str(path), "--run-dir", str(runs), "-q")
    err = capsys.readouterr().err
    assert code == 2 and "the disk is full" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not small_disk.leftovers()
    registry = Registry(small_disk.path / "dlpipe-registry")
    assert not (registry.root / INDEX).exists() or registry.versions() == []
    (run,) = list_runs(runs)
    assert run.status == {"before training": FAILED, "registering": COMPLETE}.get(stage, INTERRUPTED)
    if run.status != COMPLETE:
        with pytest.raises(ArtifactError):
            load_model(run.folder)  # no model folder, or none that loads

    small_disk.resize("8m")  # space freed: a resume sees what the full disk left, and finishes it
    code = cli("run", str(path), "--run-dir", str(runs), "-q", "--resume")
    if run.status != INTERRUPTED:
        assert code == 2 and "no unfinished run" in capsys.readouterr().err  # nothing half-done to continue
        return
    assert code == 0, capsys.readouterr().err
    assert [r.status for r in list_runs(runs)] == [COMPLETE]
    (version,) = registry.versions()
    rows = pd.read_parquet(version.folder / REFERENCE).drop(columns=["target"])
    assert len(load_model(version.folder).predict(rows)) == len(rows)
