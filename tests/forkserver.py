"""Real `dlpipe` processes to kill, without paying an interpreter start-up for each.

A warm process imports dlpipe, torch and scikit-learn once (2.5-8 s on this machine), then forks a
child per command line; the child runs `dlpipe.cli.main`, what the `dlpipe` command runs. The tests
kill those children with SIGKILL at the moments they choose, as `kill -9` would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SERVER = r"""
import json, os, sys
import dlpipe.baseline, dlpipe.cli, dlpipe.evaluate, dlpipe.package, dlpipe.pipeline, dlpipe.registry, dlpipe.report
import dlpipe.train, sklearn.linear_model, torch._dynamo
# no torch op runs here: a forked child starts with no threads and no state of a run before it
print("ready", flush=True)
while line := sys.stdin.readline():
    command = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.dup2(os.open(command["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND), 2)
        code = 1
        try:
            dlpipe.cli.main(command["argv"])
        except SystemExit as exc:
            code = exc.code
        finally:
            os._exit(code)
    print(pid, flush=True)
    sys.stdin.readline()  # reaped only when asked: until then the pid stays this child's, even once it exits
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class ForkServer:
    """`start(*argv)` forks a `dlpipe` process and returns its pid; `wait()` its exit code (-9 when killed).

    A child is reaped only in `wait()`, so until then its pid cannot pass to another process: a kill
    that comes after the child ended finds a zombie, not a stranger."""

    def __init__(self, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        )
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the fork server did not start (exit {self.process.wait()})")

    def start(self, *argv: str) -> int:
        self.process.stdin.write(json.dumps({"argv": list(argv), "stderr": str(self.log)}) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def wait(self) -> int:
        self.process.stdin.write("wait\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def run(self, *argv: str) -> int:
        self.start(*argv)
        return self.wait()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(30)
