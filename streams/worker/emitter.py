"""Publishing decisions: ledger check, produce, broker ack, ledger write — in that order.

The guarantee this gives billing (also in the README):
- every remedy a worker decides reaches `remedy.actions.v1` before its input offset is committed
  (the intake awaits the acks before it commits);
- an id already in the ledger is never produced again, across restarts, rebalances and replays;
- an id is written to the ledger only after the broker acknowledged its record. A worker that
  dies between the ack and the ledger write leaves an in-flight mark; whoever takes over its
  partitions first reads the output topics from that mark and ledgers what is already there
  (ledger.reconcile), so those records are not produced again. What can still duplicate is the
  narrow case the mark cannot see (e.g. a record acked after the take-over read the topic); a
  duplicate is exact (same remedy_id, same bytes), and billing applies remedy_id idempotently.

A batch the broker will never take (`PermanentProduceError`) is split by error: records larger
than the broker accepts become dead letters naming the reason (nothing else of the batch is
held back); anything else permanent (not authorised, no such topic) stops the worker with one
line (`OutputRefused`), because no later batch could succeed either.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Callable, NoReturn, Sequence

from confluent_kafka import KafkaError

from processors.model import Source

from streams.decide.outputs import Batch, DeadLetter, Record, batch_outputs, encode_outputs
from streams.errors import MakegoodError, PermanentProduceError, Stage
from streams.kafka.producer import Producer, describe
from streams.kafka.topics import ACTIONS, DEADLETTER, NOTICES, REVIEWS, TOPIC_SCHEMAS
from streams.ledger.store import Ledger, RemedyEntry
from streams.settings import Settings
from streams.wire.codec import Codec
from streams.worker.observe import ActionTally, Observer
from streams.worker.retry import retry_forever

log = logging.getLogger(__name__)

TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})


class OutputRefused(MakegoodError):
    """The cluster refuses this worker's output for good; the worker stops with this line."""


def _raise(line: str) -> NoReturn:
    raise OutputRefused(line)


class Emitter:
    def __init__(self, settings: Settings, codec: Codec, ledger: Ledger,
                 on_refused: Callable[[str], NoReturn] = _raise, observer: Observer | None = None):
        self.settings = settings
        self.observer = observer or Observer(namespace=settings.namespace)   # metrics, dead-letter log
        self.on_refused = on_refused     # the worker stops here: see app.Worker._refused
        self.codec = codec
        self.ledger = ledger
        self.producer: Producer | None = None
        self.topic = {name: settings.topic(name) for name in (ACTIONS, REVIEWS, NOTICES, DEADLETTER)}
        self.published = Counter()
        self._serial = asyncio.Lock()   # one emit at a time: in-flight marks assume it

    async def start(self) -> None:
        self.producer = Producer(self.settings, **{
            "linger.ms": 1, "batch.size": 1 << 20, "queue.buffering.max.messages": 500_000,
            "message.timeout.ms": 120_000})

    async def stop(self) -> None:
        if self.producer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.producer.close)
            self.producer = None

    async def emit(self, batch: Batch, *, outcome_topic: str | None = None) -> int:
        """Publish what the ledger has not seen; returns how many records were produced."""
        async with self._serial:
            outputs = batch_outputs(batch)
            ids = [o[0] for o in outputs]
            already = await self._issued(ids)
            new = [o for o in outputs if o[0] not in already]
            fresh, remedies = encode_outputs(self.codec, new)
            produced = await self._publish(fresh, remedies, outcome_topic, batch.outcomes)
            self.observer.emitted(new, outcome_topic, batch.outcomes)
            return produced

    async def emit_encoded(self, records: Sequence[Record], remedies: Sequence[RemedyEntry],
                           actions: ActionTally | None = None) -> int:
        """Publish records encoded elsewhere (a sweep process) that the ledger has not seen;
        `actions` (remedy id -> action, won) is for the metrics."""
        async with self._serial:
            already = await self._issued([r[0] for r in records])
            fresh = [r for r in records if r[0] not in already]
            produced = await self._publish(fresh, [e for e in remedies if e[1] not in already], None, None)
            self.observer.emitted_encoded(fresh, actions or {})
            return produced

    async def _issued(self, ids: list[str]) -> set[str]:
        return await retry_forever("ledger check", lambda: self.ledger.issued(ids)) if ids else set()

    async def _publish(self, fresh: Sequence[Record], remedies: Sequence[RemedyEntry],
                       outcome_topic: str | None, outcomes: Counter | None) -> int:
        """In-flight mark, produce, broker ack, ledger write (+ outcome counters)."""
        counts = (outcome_topic, outcomes) if outcome_topic and outcomes else None
        if not fresh:
            if counts:
                await retry_forever("outcome counters", lambda: self.ledger.count_outcomes(*counts))
            return 0
        worker = self.settings.worker_id
        await retry_forever("in-flight mark", lambda: self.ledger.mark_inflight(worker, int(time.time() * 1000)))
        try:
            await retry_forever("produce", lambda: self._produce(fresh))
        except PermanentProduceError as exc:
            fresh, remedies = await self._set_aside(fresh, remedies, exc)
        new_ids = [r[0] for r in fresh]
        await retry_forever("ledger write", lambda: self.ledger.record(new_ids, remedies, worker, counts))
        for _, topic, _, _ in fresh:
            self.published[topic] += 1
        return len(fresh)

    async def _produce(self, records: Sequence[Record]) -> None:
        assert self.producer is not None
        topics = self.topic
        with self.observer.producing():
                await self.producer.send_batch([(topics[topic], key, value, None) for _, topic, key, value in records])

    async def _set_aside(self, fresh: Sequence[Record], remedies: Sequence[RemedyEntry],
                         exc: PermanentProduceError) -> tuple[list[Record], list[RemedyEntry]]:
        """After a permanent failure: the records the broker refused as too large are replaced
        by dead letters; every other record of the batch is delivered (again: the idempotent
        ledger check keeps that exact). Any other permanent error stops the worker."""
        refused = {i: err for i, err in exc.failures}
        others = [err for err in refused.values() if err.code() not in TOO_LARGE]
        if others:
            self.on_refused(f"the cluster refuses makegood's output: {describe(others[0])}; check that "
                            "the output topics exist (`makegood topics create`) and this worker's ACLs")
        kept = [r for i, r in enumerate(fresh) if i not in refused]
        dead = Batch()
        for i, err in refused.items():
            oid, topic, key, value = fresh[i]
            log.warning("output %s for %s (%d bytes) refused by the broker as too large; dead-lettered",
                        oid, topic, len(value))
            dead.fail(DeadLetter(self._lineage(topic, value), key, value, Stage.PROCESS,
                                 type(exc).__name__, f"{describe(err)}: output {oid} of {len(value):,} bytes"))
        letters, _ = encode_outputs(self.codec, batch_outputs(dead))
        kept_ids = {r[0] for r in kept}
        records = kept + letters
        await retry_forever("produce", lambda: self._produce(records))
        return records, [e for e in remedies if e[1] in kept_ids]

    def _lineage(self, topic: str, value: bytes) -> Source:
        """The input record an output answers (its `source`), which names its dead letter."""
        try:
            return self.codec.decode_obj(TOPIC_SCHEMAS[topic], value).source
        except Exception:  # noqa: BLE001 - an output we cannot read back: name the output topic
            return Source(self.topic[topic], -1, -1)
