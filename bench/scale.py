"""The entitlement store at scale (issue #15): phases `sweep1s` and `scale`.

- sweep1s: the 1M sweep of phase sweep1, but the CLOSED revision names one service (melon:
  two of the twelve bench profiles' combinations, about a sixth of the states), so the sweep
  reads only that service's index range (worker.store.Selector). Compare with sweep1.
- scale (`--scale-states N`, off by default): N states on one worker, measured as an operator
  meets them: the group's offsets are committed at the end of the topic (as if a worker had
  decided them), a worker with an empty state dir restores all N from the compacted topic
  (restore time, peak RSS), is SIGKILLed and restarted on the store it left (restart to
  /readyz), then a CLOSED revision naming one service is swept (sweep time, peak RSS).
"""
from __future__ import annotations

import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from array import array

from confluent_kafka import Consumer, TopicPartition

from streams.kafka.topics import ENTITLEMENTS

from . import data
from .harness import Namespace, PhaseTimeout, Workers, memory_kb, publish, say, spawn, wait_for
from .scenarios import Context, _windows, ns_partitions, swept

SWEPT_SERVICES = ("melon",)     # sweep1s: the bench's usual mix, a sixth of it melon
SCALE_SWEPT = ("kakaotv",)      # scale: 2% of the states belong to the service the window names
SWEPT_SHARE = 0.02
CHUNK = 500_000
RESTORED = re.compile(r"entitlement store restored in ([\d.]+) s: .*; (\d+) records read")
PORT = re.compile(r"metrics http://[^\s:]+:(\d+)/metrics")


def _narrow(closed, services=SWEPT_SERVICES):
    return dataclasses.replace(closed, services=services)


def selective_sweep(ctx: Context) -> dict:
    """Phase sweep1s: window CLOSED for one service -> last remedy ledgered, N states stored."""
    ns = Namespace("sweep1s", ctx.rundir)
    workers = None
    ents = ctx.ents.head(ctx.sweep_n or ctx.n)
    n = len(ents)
    result: dict = {"entitlements": n, "workers": 1, "services": list(SWEPT_SERVICES)}
    try:
        workers = Workers(ns, 1, {"MAKEGOOD_STATE_DIR": str(ns.dir / "state")})
        workers.wait_assigned(ns_partitions(ns))
        opened, closed = data.windows()
        closed = _narrow(closed)
        _windows(ctx, ns, opened)
        publish(ns.settings, ENTITLEMENTS, ents.keys, ents.values)
        wait_for("states stored (window OPEN)", lambda: ns.outcomes(ENTITLEMENTS), n, ctx.timeout,
                 workers.check, interval=0.25)
        time.sleep(2.0)
        before = ns.ledger.size()
        expected = before + ents.outputs_earned(ctx.policy, (opened, closed))
        result["expected_outputs"] = expected - before
        result.update(swept(ctx, ns, workers, closed, before, expected, "remedies ledgered (one service)"))
        result["memory_kb"] = [memory_kb(p) for p in workers.pids]
        return result
    finally:
        if workers is not None:
            workers.stop()
        ns.drop()


def _varint(n: int) -> bytes:
    n = n << 1                  # zigzag of a non-negative length
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class _Splicer:
    """Encoded states at a few microseconds each: entitlement_id and user_id are the first two
    fields of the Avro record, so a record is the framing header, the two strings and a tail
    encoded once per (profile, updated_at). Checked against codec.encode on a sample."""

    def __init__(self, codec, profs: list[dict]):
        self.codec, self.profs = codec, profs
        a = codec.encode("entitlement_state", {**profs[0], "entitlement_id": "", "user_id": ""}, check=False)
        b = codec.encode("entitlement_state", {**profs[0], "entitlement_id": "a", "user_id": ""}, check=False)
        self.head = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        self.tails: dict[tuple[int, int], tuple[bytes, bytes]] = {}

    def encode(self, p: int, eid: str, uid: str, updated_at: int) -> bytes:
        t = self.tails.get((p, updated_at))
        if t is None:
            enc = self.codec.encode("entitlement_state", {**self.profs[p], "entitlement_id": "", "user_id": "",
                                                          "updated_at": updated_at}, check=False)
            t = self.tails[(p, updated_at)] = (enc[:self.head], enc[self.head + 2:])
        e, u = eid.encode(), uid.encode()
        return t[0] + _varint(len(e)) + e + _varint(len(u)) + u + t[1]


def _pick(rnd: random.Random, profs: list[dict], rare: list[int], common: list[int]) -> int:
    return rnd.choice(rare) if rnd.random() < SWEPT_SHARE else rnd.choice(common)


def _publish_generated(ctx: Context, ns: Namespace, n: int) -> array:
    """N states like data.entitlements, generated and published CHUNK at a time (10M encoded
    records would hold gigabytes in the bench process); returns the profile of each record.
    SWEPT_SHARE of them belong to the swept service, the rest to the others (a window that
    touches one service of many)."""
    profs = [p.template for p in data.profiles()]
    rare = [i for i, p in enumerate(profs) if p["service"] in SCALE_SWEPT]
    common = [i for i, p in enumerate(profs) if p["service"] not in SCALE_SWEPT]
    rnd = random.Random(10)
    picks = array("H", (_pick(rnd, profs, rare, common) for _ in range(n)))
    splice = _Splicer(ctx.codec, profs)
    for i in (0, 1, 12345):
        want = ctx.codec.encode("entitlement_state", {**profs[picks[0]], "entitlement_id": f"s{i}",
                                                      "user_id": f"u{i >> 1}", "updated_at": data.START}, check=False)
        assert splice.encode(picks[0], f"s{i}", f"u{i >> 1}", data.START) == want, "splice differs from encode"
    t0 = time.monotonic()
    for lo in range(0, n, CHUNK):
        keys, values = [], []
        for i in range(lo, min(n, lo + CHUNK)):
            eid = f"s{i}"
            keys.append(eid.encode())
            values.append(splice.encode(picks[i], eid, f"u{i >> 1}", data.START - data.HOUR - (i % 97) * 60_000))
        publish(ns.settings, ENTITLEMENTS, keys, values)
        say(f"  published {min(n, lo + CHUNK):,} of {n:,} states ({time.monotonic() - t0:.0f} s, not timed)")
    return picks


def _commit_to_end(ns: Namespace) -> int:
    """Commit the entitlement group's offsets at the end of every partition."""
    s = ns.settings
    c = Consumer(s.kafka_config(**{"group.id": s.entitlements_group, "enable.auto.commit": False}))
    topic = s.topic(ENTITLEMENTS)
    ends = [TopicPartition(topic, p, c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1])
            for p in range(ns_partitions(ns))]
    c.commit(offsets=ends, asynchronous=False)
    c.close()
    return sum(tp.offset for tp in ends)


def _ready(log, proc: subprocess.Popen, timeout: float) -> float:
    """Seconds until the worker's /readyz answers 200 (its port from the start-up line)."""
    t0 = time.monotonic()
    port = None
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {log.read_text(errors='replace')[-1500:]}")
        if port is None:
            found = PORT.search(log.read_text(errors="replace")) if log.exists() else None
            port = int(found.group(1)) if found else None
        if port is not None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
        time.sleep(0.1)
    raise PhaseTimeout(f"worker not ready within {timeout:.0f} s", {})


def _restored(log) -> tuple[float, int] | None:
    found = RESTORED.findall(log.read_text(errors="replace"))
    return (float(found[-1][0]), int(found[-1][1])) if found else None


def _du_mb(path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def scale(ctx: Context, n: int, out: dict | None = None) -> dict:
    """Phase scale (module doc); `out` is filled as it goes, so an interrupted run keeps what it measured."""
    ns = Namespace("scale", ctx.rundir)
    env = {"MAKEGOOD_STATE_DIR": str(ns.dir / "state")}
    timeout = max(ctx.timeout, 600 + 0.00025 * n)     # a restore under a loaded machine: ~100 us a state
    result = out if out is not None else {}
    result.update(states=n, swept_services=list(SCALE_SWEPT), swept_share=SWEPT_SHARE)
    workers = None
    try:
        opened, closed = data.windows()
        closed = _narrow(closed, SCALE_SWEPT)
        _windows(ctx, ns, opened)
        picks = _publish_generated(ctx, ns, n)
        result["records_on_topic"] = _commit_to_end(ns)

        # 1. a worker with no store: every state restored from the topic
        workers = Workers(ns, 1, env)
        proc, log = workers.procs[0], workers.logs[0]
        result["restore_to_ready_s"] = _ready(log, proc, timeout)
        got = _restored(log)
        result["restore_s"], result["restore_records"] = got if got else (None, None)
        result["restore_memory_kb"] = memory_kb(proc.pid)
        result["store_mb"] = round(_du_mb(ns.dir / "state"), 1)
        say(f"  restored: {result}")

        # 2. SIGKILL, restart on the store left behind
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        workers.logs[0] = log.with_name("worker-restart.log")
        proc = workers.procs[0] = spawn(
            [sys.executable, "-m", "streams.cli", "worker"], workers.logs[0],
            dict(os.environ, MAKEGOOD_METRICS_PORT="0", MAKEGOOD_NAMESPACE=ns.name, PYTHONUNBUFFERED="1", **env))
        result["restart_to_ready_s"] = _ready(workers.logs[0], proc, ctx.timeout)
        got = _restored(workers.logs[0])
        result["restart_restore_s"], result["restart_records_read"] = got if got else (None, None)
        say(f"  restarted: ready in {result['restart_to_ready_s']:.1f} s, {result['restart_records_read']} records read")

        # 3. a CLOSED revision naming one service: the sweep reads only its states
        before = ns.ledger.size()
        counts = [0] * len(data.profiles())
        for p in picks:
            counts[p] += 1
        per = data.outputs_per_profile(ctx.policy, (opened, closed))
        expected = before + sum(c * k for c, k in zip(counts, per))
        result["sweep_expected_outputs"] = expected - before
        got = swept(ctx, ns, workers, closed, before, expected, "remedies ledgered (scale sweep)", timeout)
        if "seconds" in got:
            result["sweep_s"] = got["seconds"]
        else:
            result.update(sweep_timed_out=got["timed_out"], ledgered=got["ledgered"])
        result["memory_kb"] = memory_kb(proc.pid)
        return result
    finally:
        if workers is not None:
            workers.stop()
        ns.drop()
