"""A real PostgreSQL for the tests: a throwaway cluster from Debian's packages on a free loopback
port, started once per test process, removed afterwards.

Where PostgreSQL is not installed the tests that need it skip, unless DLPIPE_REQUIRE_POSTGRES=1
(CI installs it and sets that), which makes them fail instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from loopback import free_port


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_owner(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: run them as the packages' postgres user
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Cluster:
    """A throwaway PostgreSQL server on a free loopback port: `start()` and `stop()` at will (a test
    of a store that goes away stops it), `remove()` stops it and deletes its files."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="dlpipe-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self.data, self.port = self.folder / "data", free_port()
        self.url = f"postgresql+psycopg://dlpipe@127.0.0.1:{self.port}/postgres"
        initdb = [str(binaries / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "dlpipe", "--no-sync"]
        subprocess.run(_as_owner(initdb), check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = [str(self.binaries / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log")]
        subprocess.run(_as_owner([*start, "-w", "start"]), check=True, capture_output=True)

    def stop(self) -> None:
        stop = [str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_owner(stop), capture_output=True)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def cluster_or_skip() -> Cluster:
    """A new server, not started; skips (or fails, with DLPIPE_REQUIRE_POSTGRES=1) without PostgreSQL."""
    binaries = _binaries()
    if binaries is None:
        if os.environ.get("DLPIPE_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    return Cluster(binaries)


@pytest.fixture(scope="session")
def postgres_url():
    """A SQLAlchemy URL of an empty database on a fresh server."""
    if os.environ.get("DLPIPE_TEST_POSTGRES"):
        yield os.environ["DLPIPE_TEST_POSTGRES"]
        return
    cluster = cluster_or_skip()
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.remove()
