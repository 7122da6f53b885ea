"""What a worker shows an SRE while it runs: heartbeat, readiness, probes, a progress line.

Loop tasks started with the worker's services:
- heartbeat (every 0.5 s): feeds /healthz and makegood_event_loop_lag_seconds; a loop blocked
  for STALL_DUMP_S has the stack of every thread written to stderr (faulthandler, which needs
  neither the loop nor the GIL), and says so in the log once it runs again;
- readiness (same tick): the incident feed caught up, entitlement partitions restored and
  caught up after the last assignment, report partitions' cases read back, Kafka and Redis
  reachable; every change is logged once;
- probes (every PROBE_S): Redis PING (+ ledger size and in-flight marks), Kafka committed
  offsets and end offsets of every input partition this worker holds (lag), each through an
  ops.health.Outage, so an outage is one WARNING, a reminder a minute, one INFO when it ends;
- progress (every PROGRESS_S while work flows): consumed, decided, emitted, dead letters, lag.
"""
from __future__ import annotations

import asyncio
import faulthandler
import logging
import sys
import time
from typing import Any, Callable

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.kafka.topics import DECISIONS, ENTITLEMENTS, OUTAGES, REPORTS, RETRIAGE
from streams.ops.health import Health, Outage
from streams.ops.logs import LibraryNoise
from streams.ops.metrics import WorkerMetrics
from streams.settings import Settings

log = logging.getLogger(__name__)

TICK_S = 0.5
PROBE_S = 5.0
PROGRESS_S = 30.0
PROBE_TIMEOUT_S = 5.0
STALL_DUMP_S = 60.0       # the event loop blocked this long: every thread's stack to stderr
CONDITIONS = ["kafka", "redis", "incident feed", "entitlements", "reports", "schema registry"]

Lags = dict[tuple[str, int], int]


class KafkaProbe:
    """Committed offsets and end offsets of the partitions a worker holds, from one AdminClient
    (client.id: the worker id). Runs in an executor thread; raises when Kafka does not answer."""

    def __init__(self, settings: Settings, entitlement_group: str, reports_group: str) -> None:
        self.settings = settings
        self.groups = {ENTITLEMENTS: entitlement_group, REPORTS: reports_group, RETRIAGE: reports_group,
                       DECISIONS: reports_group}
        self.admin = AdminClient(settings.kafka_config())

    def lags(self, held: dict[str, set[int]], feed_positions: dict[int, int]) -> Lags:
        try:
            return self._lags(held, feed_positions)
        except TimeoutError:
            # the broker answered metadata, yet a request had no answer: librdkafka can keep
            # waiting on a coordinator it cached before a broker restart (librdkafka#5456,
            # #5511), so the next probe asks through a new client
            self.admin = AdminClient(self.settings.kafka_config())
            raise

    def _lags(self, held: dict[str, set[int]], feed_positions: dict[int, int]) -> Lags:
        s, t = self.settings, PROBE_TIMEOUT_S
        self.admin.list_topics(timeout=t)                       # raises when no broker answers
        wanted = {(logical, p) for logical, parts in held.items() for p in parts}
        wanted |= {(OUTAGES, p) for p in feed_positions}
        if not wanted:
            return {}
        ends_f = self.admin.list_offsets({TopicPartition(s.topic(lg), p): OffsetSpec.latest()
                                          for lg, p in wanted}, request_timeout=t)
        ends = {(tp.topic, tp.partition): f.result(t).offset for tp, f in ends_f.items()}
        committed: dict[tuple[str, int], int] = {}
        by_group: dict[str, list[TopicPartition]] = {}
        for logical, p in wanted:
            if logical in self.groups:
                by_group.setdefault(self.groups[logical], []).append(TopicPartition(s.topic(logical), p))
        for group, tps in by_group.items():
            fut = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)],
                                                         request_timeout=t)[group]
            for tp in fut.result(t).topic_partitions:
                committed[(tp.topic, tp.partition)] = max(tp.offset, 0)
        out: Lags = {}
        for logical, p in wanted:
            real = (s.topic(logical), p)
            done = feed_positions.get(p, 0) if logical == OUTAGES else committed.get(real, 0)
            # every re-triage request is written in a transaction, whose commit marker takes the
            # offset after it: a partition read to its end still ends one past the committed offset
            marker = 1 if logical == RETRIAGE and ends.get(real, 0) > done else 0
            out[(logical, p)] = max(0, ends.get(real, 0) - done - marker)
        return out


class Watch:
    """The loop tasks above, over what the worker hands in: callables, so this module never
    imports the collaborators it watches."""

    def __init__(self, settings: Settings, health: Health, metrics: WorkerMetrics, noise: LibraryNoise,
                 *, ledger: Any, probe: KafkaProbe, held: Callable[[], dict[str, set[int]]],
                 feed_positions: Callable[[], dict[int, int]], conditions: Callable[[], dict[str, str | None]],
                 stall_dump_s: float | None = STALL_DUMP_S):
        self.settings = settings
        self.stall_dump_s = stall_dump_s
        self.health = health
        self.metrics = metrics
        self.ledger = ledger
        self.probe = probe
        self.held = held
        self.feed_positions = feed_positions
        self.conditions = conditions            # name -> None when met, else the reason
        self.redis = Outage(f"Redis ledger unreachable at {settings.redis_address}", log,
                            on_change=lambda up: self._dependency("redis", up))
        self.kafka = Outage(f"Kafka unreachable at {settings.bootstrap}", log,
                            on_change=lambda up: self._dependency("kafka", up, noise))
        self.ready = False
        self._not_ready: list[str] = []
        self._started = time.monotonic()
        self._ready_before = False
        self._unready_since = self._started
        self._tasks: list[asyncio.Task] = []

    def _dependency(self, name: str, up: bool, noise: LibraryNoise | None = None) -> None:
        self.metrics.up.labels(name).set(1 if up else 0)
        if not up:
            self.metrics.outages.labels(name).inc()
        if noise is not None:
            noise.kafka_down = not up

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(f()) for f in (self._tick, self._probe_redis,
                                                            self._probe_kafka, self._progress)]

    async def stop(self) -> None:
        if self.stall_dump_s is not None:
            faulthandler.cancel_dump_traceback_later()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ heartbeat, readiness

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            if self.stall_dump_s is not None:    # re-armed every tick: fires only if the loop stops
                faulthandler.dump_traceback_later(self.stall_dump_s, exit=False, file=sys.stderr)
            await asyncio.sleep(TICK_S)
            lag = max(0.0, loop.time() - before - TICK_S)
            self.metrics.loop_lag.set(lag)
            if self.stall_dump_s is not None and lag >= self.stall_dump_s:
                log.warning("the event loop was blocked for %.0f s; the stack of every thread at %.0f s is "
                            "on stderr, after a line \"Timeout (...)!\"", lag, self.stall_dump_s)
            self.health.beat()
            self.evaluate()

    def evaluate(self) -> bool:
        for name, reason in self.conditions().items():
            self.health.set(name, reason is None, reason or "")
        ready, reasons = self.health.ready()
        self.metrics.ready.set(1 if ready else 0)
        if ready != self.ready:
            now = time.monotonic()
            if ready and not self._ready_before:
                log.info("ready (%.1f s after start)", now - self._started)
            elif ready:
                log.info("ready again (not ready for %.1f s)", now - self._unready_since)
            else:
                self._unready_since = now
                log.info("not ready: %s", "; ".join(reasons))
            self._ready_before = self._ready_before or ready
        elif not ready and [r.split(":")[0] for r in reasons] != [r.split(":")[0] for r in self._not_ready]:
            log.info("not ready: %s", "; ".join(reasons))
        self.ready, self._not_ready = ready, reasons
        return ready

    # ------------------------------------------------------------------ probes

    async def _probe_redis(self) -> None:
        r = self.ledger.redis
        keys = self.ledger.keys
        while True:
            try:
                pipe = r.pipeline(transaction=False)
                pipe.ping()
                pipe.scard(keys.ledger)
                pipe.hlen(keys.inflight)
                _, size, marks = await asyncio.wait_for(pipe.execute(), PROBE_TIMEOUT_S)
                self.metrics.ledger_ids.set(size)
                self.metrics.inflight_marks.set(marks)
                self.metrics.up.labels("redis").set(1)
                self.health.set("redis", True)
                self.redis.ok(f"Redis ledger at {self.settings.redis_address} reachable again")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: not reachable now
                self.metrics.up.labels("redis").set(0)
                self.health.set("redis", False, f"Redis ledger unreachable at {self.settings.redis_address}")
                self.redis.failed(_why(exc), "not ready until it is back; writes wait for it")
            await asyncio.sleep(PROBE_S if self.redis.up else PROBE_S / 2)

    async def _probe_kafka(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            held, positions = self.held(), self.feed_positions()
            try:
                lags = await loop.run_in_executor(None, self.probe.lags, held, positions)
                self.metrics.set_lag(lags)
                for logical in (ENTITLEMENTS, REPORTS):
                    self.metrics.owned.labels(logical).set(len(held.get(logical, ())))
                self.metrics.up.labels("kafka").set(1)
                self.health.set("kafka", True)
                self.kafka.ok(f"Kafka at {self.settings.bootstrap} reachable again")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                self.metrics.up.labels("kafka").set(0)
                self.health.set("kafka", False, f"Kafka unreachable at {self.settings.bootstrap}")
                self.kafka.failed(_why(exc), "not ready until it is back; the worker waits for it")
            await asyncio.sleep(PROBE_S)

    # ------------------------------------------------------------------ progress

    async def _progress(self) -> None:
        last = dict(self.metrics.totals)
        while True:
            await asyncio.sleep(PROGRESS_S)
            now = dict(self.metrics.totals)
            line = progress_line(last, now, PROGRESS_S)
            if line:
                log.info("%s", line)
            last = now


def progress_line(before: dict[str, int], now: dict[str, int], seconds: float) -> str | None:
    """The progress line for the interval between two snapshots of WorkerMetrics.totals; None
    when nothing flowed and nothing waits (an idle worker logs nothing)."""
    d = {k: now.get(k, 0) - before.get(k, 0) for k in now if k != "lag"}
    lag = now.get("lag", 0)
    if not any(d.values()) and not lag:
        return None
    consumed = ", ".join(f"{k.split(':', 1)[1]} {v:,}" for k, v in sorted(d.items())
                         if k.startswith("consumed:") and v)
    emitted = ", ".join(f"{k.split(':', 1)[1]} {v:,}" for k, v in sorted(d.items())
                        if k.startswith("emitted:") and v)
    return (f"progress, last {seconds:.0f} s: consumed {d.get('consumed', 0):,}"
            + (f" ({consumed})" if consumed else "")
            + f", decided {d.get('decided', 0):,}, emitted {d.get('emitted', 0):,}"
            + (f" ({emitted})" if emitted else "")
            + f", dead letters {d.get('dead', 0):,}, lag {lag:,}")


def _why(exc: BaseException) -> str:
    text = str(exc) or "no answer"
    if isinstance(exc, asyncio.TimeoutError):
        text = f"no answer within {PROBE_TIMEOUT_S:.0f} s"
    return f"{type(exc).__name__}: {text[:200]}"
