"""Publish-to-decision latency of damage reports at a steady rate, then at rising rates.

Latency of one report = the Kafka timestamp of its report-level notice on remedy.notices.v1
(notice_id = ids.notice_id("report", report_id); every triaged report gets exactly one) minus
the report record's own timestamp, which the publisher sets when it produces it. Both stamps
come from this machine's clock.
"""
from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from streams.kafka.topics import NOTICES, REPORTS, admin_client

from . import data
from .harness import Namespace, PhaseTimeout, Workers, say, wait_for
from .scenarios import Context, _windows, ns_partitions

TARGET_P99_MS = 500.0


def percentile(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    i = min(len(sorted_ms) - 1, max(0, int(round(q * (len(sorted_ms) - 1)))))
    return sorted_ms[i]


class NoticeReader:
    """Reads the namespace's notices topic onwards from where it stopped last time."""

    def __init__(self, ns: Namespace, codec):
        self.topic = ns.settings.topic(NOTICES)
        self.codec = codec
        self.c = Consumer(ns.settings.kafka_config(**{"group.id": ns.settings.topic("bench.notices"),
                                                      "enable.auto.commit": False}))
        parts = self.c.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        self.pos = {p: 0 for p in parts}
        self.c.assign([TopicPartition(self.topic, p, 0) for p in parts])

    def read(self) -> dict[str, int]:
        """report_id -> notice timestamp (ms) for the report notices written since the last call."""
        ends = {p: self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1] for p in self.pos}
        out: dict[str, int] = {}
        remaining = {p for p in self.pos if ends[p] > self.pos[p]}
        while remaining:
            msgs = self.c.consume(5000, timeout=5)
            if not msgs:
                break
            for m in msgs:
                if m.error():
                    continue
                self.pos[m.partition()] = m.offset() + 1
                n = self.codec.decode("user_notice", m.value())
                if n["report_id"] is not None:
                    out[n["report_id"]] = m.timestamp()[1]
                if self.pos[m.partition()] >= ends[m.partition()]:
                    remaining.discard(m.partition())
        return out

    def close(self) -> None:
        self.c.close()


def warm_producer(ns: Namespace) -> Producer:
    """The publishing platform service: one long-lived producer, connected and with its
    idempotent producer id before any timed record (a cold one holds its first records for
    ~0.5 s while it connects, which once showed up as report latency)."""
    p = Producer(ns.settings.producer_config(**{"linger.ms": 2, "acks": "all", "enable.idempotence": True}))
    warm = ns.settings.topic("bench.warmup.v1")
    admin = admin_client(ns.settings)       # held until the topic exists (its futures need it)
    admin.create_topics([NewTopic(warm, 1, 1)])[warm].result(30)
    p.produce(warm, value=b"warm-up")
    if p.flush(30):
        raise RuntimeError("reports: the publisher could not reach the broker")
    return p


def _publish_paced(ns: Namespace, codec, p: Producer, prefix: str, rate: int, seconds: float
                   ) -> tuple[dict[str, int], float]:
    """Produce rate x seconds reports, evenly spread; returns report_id -> record timestamp, and the
    rate actually achieved. Reports are encoded before the clock starts."""
    reports = data.reports(prefix, int(rate * seconds))
    encoded = [(r.report_id, r.reporter_id.encode(), codec.encode_obj("damage_report", r)) for r in reports]
    topic = ns.settings.topic(REPORTS)
    stamps: dict[str, int] = {}
    t0 = time.monotonic()
    sent = 0
    while sent < len(encoded):
        due = min(len(encoded), int((time.monotonic() - t0) * rate) + 1)
        while sent < due:
            rid, key, value = encoded[sent]
            ts = time.time_ns() // 1_000_000
            p.produce(topic, key=key, value=value, timestamp=ts)
            stamps[rid] = ts
            sent += 1
        p.poll(0)
        time.sleep(0.001)
    elapsed = time.monotonic() - t0
    if p.flush(30):
        raise RuntimeError("reports: publishing did not finish")
    return stamps, len(encoded) / elapsed


def _step(ns: Namespace, ctx: Context, reader: NoticeReader, workers: Workers, producer: Producer,
          prefix: str, rate: int, seconds: float, published_before: int) -> dict:
    say(f"  reports at {rate:,}/s for {seconds:.0f} s ...")
    stamps, achieved = _publish_paced(ns, ctx.codec, producer, prefix, rate, seconds)
    total = published_before + len(stamps)
    drain = max(30.0, 3 * seconds)
    step = {"rate": rate, "seconds": seconds, "published": len(stamps), "achieved_rate": round(achieved, 1)}
    try:
        wait_for(f"reports triaged at {rate:,}/s", lambda: ns.outcomes(REPORTS), total, drain, workers.check,
                 interval=0.1)
    except PhaseTimeout as exc:
        step["timed_out"] = str(exc)
    seen = reader.read()
    lat = sorted(seen[r] - ts for r, ts in stamps.items() if r in seen)
    step["received"] = len(lat)
    missing = len(stamps) - len(lat)
    if missing:                      # a report still undecided counts as slower than any decided one
        lat += [float("inf")] * missing
    step.update(p50_ms=percentile(lat, 0.50), p99_ms=percentile(lat, 0.99), max_ms=lat[-1] if lat else None)
    step["undecided"] = missing
    for k in ("p50_ms", "p99_ms", "max_ms"):      # JSON has no infinity: undecided is None here
        if step[k] == float("inf"):
            step[k] = None
    step["ok"] = (not missing and step["p99_ms"] is not None and step["p99_ms"] < TARGET_P99_MS
                  and achieved >= 0.95 * rate)
    say(f"    p50 {_ms(step['p50_ms'])}, p99 {_ms(step['p99_ms'])}, max {_ms(step['max_ms'])}, "
        f"{len(stamps) - missing:,}/{len(stamps):,} decided")
    return step


def _ms(v: float | None) -> str:
    return "not decided in time" if v is None else f"{v:,.0f} ms"


def reports(ctx: Context, steady_rate: int, steady_s: float, steps: list[int], step_s: float) -> dict:
    ns = Namespace("reports", ctx.rundir)
    workers = None
    reader = None
    result: dict = {}
    try:
        workers = Workers(ns, 1)
        workers.wait_assigned(ns_partitions(ns))
        opened, closed = data.windows()
        _windows(ctx, ns, opened, closed)
        time.sleep(2.0)
        reader = NoticeReader(ns, ctx.codec)
        published = 0
        producer = warm_producer(ns)
        steady = _step(ns, ctx, reader, workers, producer, "s", steady_rate, steady_s, published)
        published += steady["published"]
        result["steady"] = steady
        result["steps"] = []
        for i, rate in enumerate(steps):
            st = _step(ns, ctx, reader, workers, producer, f"x{i}-", rate, step_s, published)
            published += st["published"]
            result["steps"].append(st)
            if not st["ok"]:
                break                # past the knee: higher rates only queue up further
        ok = [s["rate"] for s in result["steps"] if s["ok"]]
        result["max_steady_rate"] = max(ok) if ok else None
        return result
    finally:
        if reader is not None:
            reader.close()
        if workers is not None:
            workers.stop()
        ns.drop()
