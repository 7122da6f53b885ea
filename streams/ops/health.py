"""Liveness, readiness and outages, as plain state any thread can read.

- Liveness: something on the event loop beats at least every second (`beat`); /healthz fails
  when the last beat is older than `stall_s`, i.e. the loop is blocked or dead.
- Readiness: named conditions, each met or not with a reason (`set`); /readyz is ready when
  every condition is met and the process is alive. The worker's wiring says which conditions
  exist (worker/observe.py); a condition nobody has set yet is not met ("starting").
- Outage: one dependency (Kafka, Redis) as the log should tell it: one WARNING when it is
  lost, a reminder every `remind_s` while it stays lost, one INFO when it is back.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

STALL_S = 30.0
REMIND_S = 60.0


class Health:
    def __init__(self, conditions: list[str], *, stall_s: float = STALL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stall_s = stall_s
        self._lock = threading.Lock()
        self._beat = clock()
        self._unmet: dict[str, str] = {name: "starting" for name in conditions}

    def beat(self) -> None:
        self._beat = self.clock()

    def since_beat(self) -> float:
        return self.clock() - self._beat

    def alive(self) -> tuple[bool, str]:
        quiet = self.since_beat()
        if quiet > self.stall_s:
            return False, f"event loop has not run for {quiet:.0f} s"
        return True, "alive"

    def set(self, name: str, ok: bool, reason: str = "") -> None:
        with self._lock:
            if ok:
                self._unmet.pop(name, None)
            else:
                self._unmet[name] = reason or name

    def ready(self) -> tuple[bool, list[str]]:
        """(ready, what is not: one reason per unmet condition)."""
        alive, why = self.alive()
        with self._lock:
            reasons = [f"{name}: {reason}" for name, reason in sorted(self._unmet.items())]
        if not alive:
            reasons.insert(0, why)
        return not reasons, reasons


class Outage:
    """The log of one dependency's outages: `failed(reason)` on every failed attempt, `ok()`
    on every success; only changes (and a reminder while down) are logged."""

    def __init__(self, what: str, log: logging.Logger, *, remind_s: float = REMIND_S,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] = lambda up: None) -> None:
        self.what = what               # e.g. "Redis ledger unreachable at 127.0.0.1:6390"
        self.log = log
        self.remind_s = remind_s
        self.clock = clock
        self.on_change = on_change
        self.down_since: float | None = None
        self._reminded = 0.0
        self.failures = 0
        self.outages = 0

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, reason: str, hint: str = "not ready until it is back") -> None:
        now = self.clock()
        self.failures += 1
        if self.down_since is None:
            self.down_since = self._reminded = now
            self.outages += 1
            self.log.warning("%s (%s); %s", self.what, reason, hint)
            self.on_change(False)
        elif now - self._reminded >= self.remind_s:
            self._reminded = now
            self.log.warning("%s for %.0f s now (%s)", self.what, now - self.down_since, reason)

    def ok(self, back: str) -> None:
        if self.down_since is not None:
            lasted = self.clock() - self.down_since
            self.down_since = None
            self.log.info("%s after %.0f s", back, lasted)
            self.on_change(True)
