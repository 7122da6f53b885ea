"""Detached local processes for the dev stack: pid files, liveness, waiting, stopping."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    address: str
    answers: bool
    note: str = ""


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own exited child) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait(check: Callable[[], bool], timeout: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if not alive():
            return False
        time.sleep(0.3)
    return False


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies, however it
    dies (a demo killed by `timeout`, a test runner killed mid-test), so no worker is orphaned."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass                                                        # not Linux: best effort


def _spawn(argv: list[str], log: Path, cwd: Path, tied: bool = False) -> int:
    """Start a detached server; `tied` ones (a test's private servers) get SIGTERM when the
    process that started them dies, so a test runner killed mid-test leaves none behind."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, start_new_session=True, preexec_fn=die_with_parent if tied else None)
    return proc.pid


def _kill(pid_file: Path) -> int | None:
    """SIGKILL the server of `pid_file` (a crash, for fault tests): no shutdown of any kind.
    The pid file stays, so `up` starts it again on the same data. Returns the pid killed."""
    pid = _read_pid(pid_file)
    if not _alive(pid):
        return None
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not _alive(pid), 10, lambda: True)
    return pid


def _stop(pid_file: Path, name: str, timeout: float, say: Callable[[str], None]) -> None:
    pid = _read_pid(pid_file)
    if not _alive(pid):
        say(f"{name}: not running (nothing started by makegood)")
        pid_file.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    if not _wait(lambda: not _alive(pid), timeout, lambda: True):
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: not _alive(pid), 5, lambda: True)
    pid_file.unlink(missing_ok=True)
    say(f"{name}: stopped (pid {pid})")
