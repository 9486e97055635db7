"""Joining Ray: the one place both Ray backends (Ray Tune for `tuning:`, Ray Train for `training:`)
connect, so `address` means the same in both sections.

`address: auto` joins a running cluster and `ray://host:port` connects through Ray Client; without
one a local Ray starts, limited to the CPUs this process may use, and stops when the caller is done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager


def require_ray(section: str) -> None:
    """A named error, not an ImportError traceback, when Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        from dlpipe.errors import ConfigError

        raise ConfigError(
            "`backend: ray` needs Ray, which is not installed",
            where=f"{section}.backend",
            fix="pip install 'dlpipe[ray]', or use the default backend",
        ) from None


def local_cpus() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def connected(address: str | None, section: str) -> Iterator[None]:
    """Ray, joined at `address` or started locally, for the body; a Ray this call started stops after."""
    require_ray(section)
    import ray

    if ray.is_initialized():  # the caller (a test, a notebook) manages its own Ray
        yield
        return
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=local_cpus(), include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()
