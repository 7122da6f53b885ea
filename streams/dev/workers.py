"""`makegood worker` processes under one namespace: started, watched and stopped together.

The demo runs its workers with this, and so do the integration tests and the benchmarks: real
processes, so that a test can SIGKILL or SIGSTOP one exactly as an SRE's bad day would.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from streams.dev.procs import die_with_parent
from streams.errors import StackError
from streams.settings import Settings

# the start-up line names the worker's endpoint (MAKEGOOD_METRICS_PORT=0: a free port it chose)
_ENDPOINT = re.compile(r"metrics http://[^\s:]+:(\d+)/metrics")


class WorkerPool:
    def __init__(self, settings: Settings, logdir: Path):
        self.settings = settings
        self.logdir = logdir
        self.procs: list[subprocess.Popen] = []

    def start(self, n: int, env: dict[str, str] | None = None) -> None:
        """Start `n` workers; each serves /metrics on a free port of its own unless `env` says
        otherwise (`port(i)` finds it)."""
        env = dict(os.environ, **{"MAKEGOOD_METRICS_PORT": "0", **(env or {})},
                   MAKEGOOD_NAMESPACE=self.settings.namespace, PYTHONUNBUFFERED="1")
        for _ in range(n):
            log = open(self.logdir / f"worker-{len(self.procs)}.log", "wb")
            self.procs.append(subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                               preexec_fn=die_with_parent))

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            logs = [(self.logdir / f"worker-{i}.log").read_text(errors="replace") for i in range(len(self.procs))]
            if all("assigned entitlement partitions" in text for text in logs):
                return
            time.sleep(0.5)
        raise StackError(f"workers did not join the group within {timeout:.0f} s; see {self.logdir}")

    def log(self, i: int) -> str:
        return (self.logdir / f"worker-{i}.log").read_text(errors="replace")

    def port(self, i: int, timeout: float = 30) -> int:
        """The HTTP port of worker `i` (/metrics, /healthz, /readyz), from its start-up line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _ENDPOINT.search(self.log(i))
            if found:
                return int(found.group(1))
            self.check()
            time.sleep(0.2)
        raise StackError(f"worker {i} named no metrics port within {timeout:.0f} s; see {self.logdir}")

    def check(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                tail = (self.logdir / f"worker-{i}.log").read_text(errors="replace")[-2000:]
                raise StackError(f"worker {i} exited with {p.returncode}:\n{tail}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


