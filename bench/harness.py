"""What every bench phase needs: a fresh namespace, worker processes that always get cleaned up,
bulk publishing, polling Redis with progress and a deadline, and process memory."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

import redis
from confluent_kafka import Producer

from streams.ledger.store import SyncLedger
from streams.settings import Settings
from streams.kafka.topics import create_topics, delete_namespace

_LIVE: list[subprocess.Popen] = []       # every child this process started and has not reaped


def say(msg: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class PhaseTimeout(Exception):
    """A phase ran out of time; `got` is what it measured so far."""

    def __init__(self, what: str, got: dict):
        super().__init__(what)
        self.got = got


# ------------------------------------------------------------------------------ namespaces

class Namespace:
    """uuid-named topics, consumer group and Redis keys; removed again by `drop()`."""

    def __init__(self, label: str, rundir: Path):
        self.settings = Settings.from_env(namespace=f"bench-{label}-{uuid.uuid4().hex[:8]}")
        self.dir = rundir / self.settings.namespace
        self.dir.mkdir(parents=True, exist_ok=True)
        create_topics(self.settings, say=lambda m: None)
        self.ledger = SyncLedger(self.settings)

    @property
    def name(self) -> str:
        return self.settings.namespace

    def outcomes(self, logical: str) -> int:
        return sum(self.ledger.outcomes(logical).values())

    def drop(self) -> None:
        """Delete the namespace's topics and Redis keys (a 1M run leaves ~1 GB behind otherwise)."""
        try:
            delete_namespace(self.settings)
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the results
            say(f"  could not delete topics of {self.name}: {exc}")
        r = redis.Redis.from_url(self.settings.redis_url, **self.settings.redis_kwargs())
        batch = []
        for key in r.scan_iter(match=self.settings.redis_prefix + "*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                r.unlink(*batch)
                batch = []
        if batch:
            r.unlink(*batch)


# ------------------------------------------------------------------------------ processes

def spawn(args: Sequence[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    out = open(log, "wb")
    p = subprocess.Popen(list(args), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    _LIVE.append(p)
    return p


def terminate(procs: Sequence[subprocess.Popen], grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL whatever is still there after `grace` seconds."""
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        if p in _LIVE:
            _LIVE.remove(p)


def terminate_all() -> None:
    terminate(list(_LIVE), grace=10.0)


def _raise_interrupt(signum, frame):  # SIGTERM to the bench behaves like Ctrl-C: clean up, exit
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _raise_interrupt)


class Workers:
    """`makegood worker` subprocesses in one namespace."""
    ASSIGNED = re.compile(r"assigned entitlement partitions \[([0-9, ]*)\]")

    def __init__(self, ns: Namespace, n: int, env: dict[str, str] | None = None):
        # MAKEGOOD_METRICS_PORT=0: each worker picks a free port for /metrics (two on one machine)
        # each namespace's entitlement stores live with its logs (dropped with the run directory)
        env = dict(os.environ, **{"MAKEGOOD_METRICS_PORT": "0", "MAKEGOOD_STATE_DIR": str(ns.dir / "state"),
                                  **(env or {})}, MAKEGOOD_NAMESPACE=ns.name, PYTHONUNBUFFERED="1")
        self.logs = [ns.dir / f"worker-{i}.log" for i in range(n)]
        self.procs = [spawn([sys.executable, "-m", "streams.cli", "worker"], log, env) for log in self.logs]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check(self) -> None:
        for p, log in zip(self.procs, self.logs):
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.pid} exited with {p.returncode}: "
                                   f"{log.read_text(errors='replace')[-1500:]}")

    def assignments(self) -> list[set[int] | None]:
        out = []
        for log in self.logs:
            found = self.ASSIGNED.findall(log.read_text(errors="replace")) if log.exists() else []
            out.append({int(x) for x in found[-1].split(",") if x.strip()} if found else None)
        return out

    def wait_assigned(self, partitions: int, timeout: float = 120.0) -> None:
        """Until the workers' latest assignments cover every partition exactly once, stably for 3 s."""
        deadline = time.monotonic() + timeout
        stable_since = None
        while time.monotonic() < deadline:
            self.check()
            got = self.assignments()
            ok = all(a is not None for a in got) and sum(len(a) for a in got) == partitions \
                and set().union(*got) == set(range(partitions))
            if ok:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= 3.0:
                    return
            else:
                stable_since = None
            time.sleep(0.25)
        raise RuntimeError(f"workers did not share the {partitions} partitions within {timeout:.0f} s: "
                           f"{self.assignments()}")

    def stop(self) -> None:
        terminate(self.procs)


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS of a live process, in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


# ------------------------------------------------------------------------------ publishing

def bulk_producer(settings: Settings) -> Producer:
    conf = {"linger.ms": 50, "batch.size": 1 << 20, "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1 << 20, "acks": "all", "compression.type": "lz4"}
    return Producer(settings.kafka_config(**conf))


def publish(settings: Settings, logical: str, keys: Sequence[bytes], values: Sequence[bytes | None],
            producer: Producer | None = None) -> float:
    """Produce every (key, value) to the namespace's topic and wait for the acks; returns seconds."""
    p = producer or bulk_producer(settings)
    topic = settings.topic(logical)
    errors: list[str] = []

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))

    t0 = time.monotonic()
    for i, (k, v) in enumerate(zip(keys, values)):
        while True:
            try:
                p.produce(topic, key=k, value=v, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(120)
    if left or errors:
        raise RuntimeError(f"publishing to {topic} failed: {left} unsent, errors {errors[:3]}")
    return time.monotonic() - t0


# ------------------------------------------------------------------------------ waiting

def wait_for(what: str, value: Callable[[], int], target: int, timeout: float,
             check: Callable[[], None] = lambda: None, interval: float = 0.02) -> dict:
    """Poll `value()` until it reaches `target`. Returns {first, done, value} in monotonic seconds
    (`first`: the first poll that saw a non-zero value). Raises PhaseTimeout with what it saw."""
    t0 = time.monotonic()
    first = None
    last_say = t0
    last_v = 0
    while True:
        v = value()
        now = time.monotonic()
        if v and first is None:
            first = now
        if v >= target:
            return {"start": t0, "first": first, "done": now, "value": v}
        if now - last_say >= 5.0:
            rate = (v - last_v) / (now - last_say)
            say(f"  {what}: {v:,} / {target:,} ({rate:,.0f}/s, {now - t0:.0f} s)")
            last_say, last_v = now, v
        if now - t0 > timeout:
            raise PhaseTimeout(f"{what}: {v:,} of {target:,} after {timeout:.0f} s",
                               {"start": t0, "first": first, "done": None, "value": v, "target": target})
        check()
        time.sleep(interval)
