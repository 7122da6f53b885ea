"""Catch-up on partition assignment: the input topics, not faust's offsets, are the truth.

faust at_least_once can commit an offset whose event never finished: around a rebalance, events
dropped from a stream buffer or caught mid-batch can fall behind a commit (faust #606 and its
relatives). A worker that takes over a report partition would then never see them. So on every
assignment a worker re-reads the damage.reports.v1 partitions it now owns, from the beginning
up to the group's committed offsets: every report its reporter's entry in the `cases` table has
not seen is triaged, in offset order. (Entitlement states do not go through faust; their
consumer restores its partitions from the compacted topic itself: states.py.)

Everything decided here goes through the same emitter; ids already in the ledger are dropped,
so the repeated work is harmless.

Before any of that, `reconcile_inflight` closes the one gap the ledger has: a worker that died
after the broker acknowledged its records but before it ledgered them left an in-flight mark
(ledger.py); the output topics are read from that time and what is there is ledgered, so the
take-over does not publish those records a second time.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.model import Source
from processors.validate import validate_report

from .codec import DecodeError
from .emitter import Batch
from .tables import Touched, case_doc
from .topics import REPORTS

if TYPE_CHECKING:
    from .app import Pipeline

log = logging.getLogger(__name__)
CHUNK = 2000
CLOCK_MARGIN_MS = 60_000        # producers on other machines may run a little behind
STALE_MARK_MS = 30_000          # a mark this old belongs to a worker that is gone (session 10 s)


async def reconcile_inflight(pipe: "Pipeline", now_ms: int) -> int:
    """Ledger the records other workers produced but never ledgered; returns how many ids."""
    from .rebuild import OUTPUT_TOPICS, output_id
    marks = {w: t for w, t in (await pipe.ledger.inflight()).items() if w != pipe.settings.worker_id}
    if not marks:
        return 0
    since = min(marks.values()) - CLOCK_MARGIN_MS
    consumer = AIOKafkaConsumer(bootstrap_servers=pipe.settings.bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    ids: list[str] = []
    remedies = []
    try:
        for logical in OUTPUT_TOPICS:
            topic = pipe.settings.topic(logical)
            tps = [TopicPartition(topic, p) for p in range(pipe.specs[logical].partitions)]
            starts = await consumer.offsets_for_times({tp: since for tp in tps})
            ends = await consumer.end_offsets(tps)
            todo = {tp: starts[tp].offset for tp in tps if starts[tp] is not None and starts[tp].offset < ends[tp]}
            if not todo:
                continue
            consumer.assign(list(todo))
            for tp, offset in todo.items():
                consumer.seek(tp, offset)
            while todo:
                got = await consumer.getmany(*todo, timeout_ms=1000, max_records=CHUNK)
                for tp, msgs in got.items():
                    for m in msgs:
                        if m.offset < ends[tp]:
                            try:
                                oid, remedy = output_id(logical, pipe.codec, m.value)
                            except DecodeError:
                                continue
                            ids.append(oid)
                            if remedy is not None:
                                remedies.append((remedy.user_id, oid, m.value))
                    if await consumer.position(tp) >= ends[tp]:
                        todo.pop(tp, None)
    finally:
        await consumer.stop()
    if ids:
        await pipe.ledger.record(ids, remedies)
    await pipe.ledger.forget_inflight({w: t for w, t in marks.items() if t < now_ms - STALE_MARK_MS})
    log.info("reconciled in-flight marks of %s: %d output ids read back since %d", sorted(marks), len(ids), since)
    return len(ids)


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: set[int]) -> dict[int, int]:
    """The worker group's committed offset of each partition (0 where nothing is committed).
    Asked with a consumer that never joins the group, so it disturbs no assignment."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: (await consumer.committed(TopicPartition(topic, p))) or 0 for p in partitions}
    finally:
        await consumer.stop()


async def read_partitions(bootstrap: str, topic: str, partitions: set[int],
                          group: str | None = None) -> AsyncIterator[list]:
    """Batches of messages of `partitions`, from offset 0 to the end offsets as of the start —
    or, with `group`, only below that group's committed offsets: what lies above them the
    agents will consume anyway, and only committed events can have been skipped."""
    if not partitions:
        return
    bound = await committed_offsets(bootstrap, group, topic, partitions) if group else None
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        if bound is not None:
            ends = {tp: min(end, bound[tp.partition]) for tp, end in ends.items()}
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            got = await consumer.getmany(*remaining, timeout_ms=1000, max_records=CHUNK)
            for tp, msgs in got.items():
                msgs = [m for m in msgs if m.offset < ends[tp]]
                if msgs:
                    yield msgs
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


async def retriage_unseen_reports(pipe: "Pipeline", partitions: set[int]) -> int:
    """Triage every report of the owned partitions that its reporter's case entry has not seen."""
    topic = pipe.settings.topic(REPORTS)
    triaged = 0
    async for msgs in read_partitions(pipe.settings.bootstrap, topic, partitions, pipe.app.conf.id):
        batch = Batch()
        touched: Touched = {}
        async with pipe.exclusive():
            for m in msgs:
                key = m.key or b""
                try:
                    report = pipe.codec.decode_obj("damage_report", m.value)
                except DecodeError:
                    continue
                doc = case_doc(pipe.cases, key, m.partition, touched)
                if report.report_id in doc.get("seen", ()) or any(
                        p.get("report_id") == report.report_id for p in doc["pending"]):
                    continue
                try:
                    validate_report(report, pipe.policy)
                except Exception:
                    continue
                await pipe.triage(report, m.value, Source(topic, m.partition, m.offset), doc, batch)
                touched[key] = (m.partition, doc)
                triaged += 1
            if touched:
                await pipe.emitter.emit(batch)
                await pipe.store_cases(touched)
    return triaged
