"""Entitlement intake: each batch the group consumer hands over, stored and decided on arrival.

A state is admitted (or dead-lettered), compared with the stored one (newer `updated_at`
wins; a tombstone deletes, and issued remedies stand), stored, and decided against every
incident the feed knows, so an entitlement published after its window closed is remedied at
once. Partition assignment changes the store here too, and asks the sweeper to catch up
before any batch of the new assignment is decided.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from confluent_kafka import Message

from processors.model import Source

from streams.decide.admit import Admission, Rejection
from streams.decide.entitlements import owed
from streams.decide.outputs import Batch, DeadLetter, Intake
from streams.errors import RegistryUnavailable, Stage
from streams.kafka.reader import PartitionReader, Span
from streams.kafka.topics import ENTITLEMENTS
from streams.settings import Settings
from streams.worker.consumer import GroupConsumer
from streams.worker.emitter import Emitter
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.observe import Observer
from streams.worker import store as layout
from streams.worker.restore import Plan, fold, plan, stored_wins
from streams.worker.rocks import Staged, StateStore

log = logging.getLogger(__name__)

RESTORE_CHUNK = 10_000


class EntitlementIntake:
    def __init__(self, settings: Settings, admission: Admission, store: StateStore, feed: IncidentFeed,
                 emitter: Emitter, gate: Gate, partitions: int, on_assigned: Callable[[], Any], ready: Any,
                 observer: Observer | None = None, on_revoked: Callable[[], Any] = lambda: None):
        self.settings = settings
        self.observer = observer or Observer(namespace=settings.namespace)   # restore progress
        self.topic = settings.topic(ENTITLEMENTS)
        self.admission = admission
        self.store = store
        self.feed = feed
        self.emitter = emitter
        self.gate = gate
        self.partitions = partitions       # of entitlement.states.v1, as declared
        self._on_assigned = on_assigned    # the sweeper's catch-up request
        self._on_revoked = on_revoked      # the sweeper drops what it decided for these
        self._ready = ready                # set once the catch-up after an assignment is done

    async def assigned(self, parts: set[int], kept: set[int], replayed: int | None) -> None:
        async with self.gate.exclusive():
            self.store.owned = set(parts)
        log.info("assigned entitlement partitions %s (kept %s, %d records replayed from the topic)",
                 sorted(parts), sorted(kept), replayed or 0)
        self._on_assigned()

    async def revoked(self, parts: set[int]) -> None:
        async with self.gate.exclusive():
            self.store.owned -= parts
            self._on_revoked()

    async def handle(self, msgs: list[Message], consumer: GroupConsumer) -> None:
        """One batch of entitlement.states.v1 records (offset order); returns once its outputs
        and offsets are committed and ledgered (GroupFenced: dropped, the group moved on)."""
        await self._ready.wait()
        batch = Batch()
        store = self.store
        staged = store.stage()
        async with self.gate.exclusive():
            owned = store.owned
            for m in msgs:
                key, value, partition, offset = m.key(), m.value(), m.partition(), m.offset()
                if partition not in owned:      # revoked while this batch was in hand
                    continue
                source = Source(m.topic(), partition, offset)
                try:
                    self._take(key, value, source, batch, staged)
                except RegistryUnavailable:
                    raise                      # not the record's fault: the batch waits (worker.consumer)
                except Exception as exc:  # a processor bug must not stop the pipeline
                    log.exception("entitlement at %s/%s@%s failed", source.topic, partition, offset)
                    batch.fail(DeadLetter(source, key, value, Stage.PROCESS, type(exc).__name__, str(exc)))
            commit = consumer.commit_for(msgs, owned)
            await self.emitter.emit(batch, outcome_topic=ENTITLEMENTS, commit=commit)
            # the transaction committed: now the states and their checkpoints (worker.rocks)
            store.apply(staged, {tp.partition: tp.offset for tp in commit[0]})
            consumer.committed(commit[0])

    def _take(self, key: bytes | None, value: bytes | None, source: Source, batch: Batch, staged: Staged) -> None:
        store, p = self.store, source.partition
        if value is None:  # tombstone: the entitlement is gone; issued remedies stand
            if key is not None:
                store.delete(staged, p, key, store.get(p, key, staged))
            batch.outcomes[Intake.TOMBSTONE] += 1
            return
        ent = self.admission.check("entitlement_state", value, key)
        if isinstance(ent, Rejection):
            batch.fail(DeadLetter.of(source, key, value, ent))
            return
        prev = store.get(p, key, staged)     # admitted: the key is the entitlement_id
        if stored_wins(self.admission, prev, ent):
            batch.outcomes[Intake.STALE] += 1   # newer state already stored: newer wins
            return
        store.put(staged, p, key, layout.pack_entitlement(p, source.offset, ent, value), prev)
        decided = owed(self.admission.policy, self.feed.histories.values(), ent, source, batch)
        batch.outcomes[Intake.DECIDED if decided else Intake.STORED_NO_INCIDENT] += 1

    def restore(self, partitions: set[int], committed: dict[tuple[str, int], int]) -> int:
        """Bring the store's `partitions` up to the committed offsets (worker.restore): only
        the tail past each checkpoint is read, or the whole partition when the store cannot
        be trusted for it. Runs in the consumer's thread; returns the records read."""
        now = int(time.time() * 1000)
        plans = [plan(p, committed.get((self.topic, p), 0), self.store.checkpoint(p), now) for p in sorted(partitions)]
        for pl in plans:
            if pl.full:
                self.store.drop_partition(pl.partition)
        spans = [Span(pl.partition, pl.start, pl.end) for pl in plans]
        self.observer.restore_started(sorted(partitions), sum(len(s) for s in spans))
        read = 0
        started = time.monotonic()
        try:
            with PartitionReader(self.settings, **{"fetch.wait.max.ms": 50}) as reader:
                for chunk in reader.batches(self.topic, spans, chunk=RESTORE_CHUNK):
                    read += self._fold(chunk)
                    self.observer.restore_progress(len(chunk))
            # records past the last one read (transaction markers, compacted away) are covered too
            staged = self.store.stage()
            self.store.apply(staged, {pl.partition: pl.end for pl in plans})
        finally:
            self.observer.restore_finished()
        log.info("entitlement store restored in %.1f s: %s; %d records read", time.monotonic() - started,
                 "; ".join(_describe(pl) for pl in plans), read)
        return read

    def _fold(self, chunk: list) -> int:
        """worker.restore.fold, waiting out a registry outage (in the consumer's thread, not on
        the event loop: a chunk is written only once folded whole, so it simply runs again)."""
        delay = 0.5
        while True:
            try:
                return fold(self.store, self.admission, chunk)
            except RegistryUnavailable as exc:
                log.warning("restore waits for the schema registry (%s)", str(exc)[:200])
                time.sleep(delay)
                delay = min(delay * 2, 30.0)


def _describe(pl: Plan) -> str:
    if pl.full:
        return f"p{pl.partition} restored from offset 0 to {pl.end} ({pl.why})"
    if pl.start == pl.end:
        return f"p{pl.partition} current at {pl.end}"
    return f"p{pl.partition} tail {pl.start}..{pl.end} replayed ({pl.end - pl.start} offsets)"
