"""Closing the one gap the ledger has: records acknowledged by the broker but never ledgered.

A worker marks itself in flight in Redis before it produces and clears the mark with the
ledger write (ledger.store). A worker that died in between leaves its mark; whoever takes over
partitions reads the output topics from that time (less a margin for clocks) and ledgers
what is already there, so the take-over does not publish those records a second time.
Marks older than STALE_MARK_MS belong to workers that are gone and are dropped once read.
"""
from __future__ import annotations

import asyncio
import logging

from streams.errors import DecodeError
from streams.kafka.reader import PartitionReader
from streams.ledger.rebuild import OUTPUT_TOPICS, output_id
from streams.ledger.store import Ledger, RemedyEntry
from streams.settings import Settings
from streams.wire.codec import Codec

log = logging.getLogger(__name__)

CLOCK_MARGIN_MS = 60_000        # producers on other machines may run a little behind
STALE_MARK_MS = 30_000          # a mark this old belongs to a worker that is gone (session 10 s)


def read_outputs_since(settings: Settings, codec: Codec, since_ms: int) -> tuple[list[str], list[RemedyEntry]]:
    """The ids (and remedy index entries) of every output record stamped at or after `since_ms`."""
    ids: list[str] = []
    remedies: list[RemedyEntry] = []
    with PartitionReader(settings) as reader:
        for logical in OUTPUT_TOPICS:
            topic = settings.topic(logical)
            for raw in reader.read(topic, reader.since(topic, since_ms)):
                try:
                    oid, remedy = output_id(logical, codec, raw.value)
                except DecodeError:
                    continue
                ids.append(oid)
                if remedy is not None:
                    remedies.append((remedy.user_id, oid, raw.value))
    return ids, remedies


async def reconcile_inflight(settings: Settings, ledger: Ledger, codec: Codec, now_ms: int) -> int:
    """Ledger the records other workers produced but never ledgered; returns how many ids."""
    marks = {w: t for w, t in (await ledger.inflight()).items() if w != settings.worker_id}
    if not marks:
        return 0
    since = min(marks.values()) - CLOCK_MARGIN_MS
    ids, remedies = await asyncio.get_running_loop().run_in_executor(
        None, read_outputs_since, settings, codec, since)
    if ids:
        await ledger.record(ids, remedies)
    await ledger.forget_inflight({w: t for w, t in marks.items() if t < now_ms - STALE_MARK_MS})
    log.info("reconciled in-flight marks of %s: %d output ids read back since %d", sorted(marks), len(ids), since)
    return len(ids)
