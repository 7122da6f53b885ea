"""Publishing decisions: ledger check, produce, broker ack, ledger write — in that order.

The guarantee this gives billing (also in the README):
- every remedy a worker decides reaches `remedy.actions.v1` before its input offset is committed
  (the agent body awaits the acks; faust acks events only after the body returns);
- an id already in the ledger is never produced again, across restarts, rebalances and replays;
- an id is written to the ledger only after the broker acknowledged its record. A worker that
  dies between the ack and the ledger write leaves an in-flight mark; whoever takes over its
  partitions first reads the output topics from that mark and ledgers what is already there
  (catchup.reconcile_inflight), so those records are not produced again. What can still
  duplicate is the narrow case the mark cannot see (e.g. a record acked after the take-over
  read the topic); a duplicate is exact (same remedy_id, same bytes), and billing applies
  remedy_id idempotently.

Kafka transactions were weighed and left out: Redis cannot join them, and faust's exactly_once
mode has open duplicate and fencing bugs; the ledger check makes replays safe either way.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence, TypeVar

from confluent_kafka import KafkaError, Producer

from processors.model import Decision, Source

from .codec import Codec
from .ledger import Ledger, RemedyEntry
from .settings import Settings
from .topics import ACTIONS, DEADLETTER, NOTICES, REVIEWS

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class DeadLetter:
    source: Source
    key: bytes | None
    value: bytes | None
    stage: str              # DECODE | VALIDATE | PROCESS
    error_class: str
    error_message: str

    @property
    def id(self) -> str:
        s = self.source
        return f"dl|{s.topic}|{s.partition}|{s.offset}"


@dataclass
class Batch:
    """What one batch of input events produced; outcomes are counted per input topic."""
    decisions: list[Decision] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)

    def add(self, decision: Decision) -> None:
        self.decisions.append(decision)
        self.outcomes[decision.outcome] += 1

    def fail(self, dl: DeadLetter) -> None:
        self.dead.append(dl)
        self.outcomes[f"dead-letter:{dl.stage.lower()}"] += 1


Record = tuple[str, str, bytes, bytes]      # (output id, logical topic, key, value)


def batch_outputs(batch: Batch) -> list[tuple[str, str, str, Any]]:
    """(id, logical topic, key, record) for every output in the batch, in a stable order, once
    each. Nothing is encoded yet: ids the ledger already has never are."""
    out: list[tuple[str, str, str, Any]] = []
    seen: set[str] = set()

    def add(oid: str, topic: str, key: str, record: Any) -> None:
        if oid not in seen:
            seen.add(oid)
            out.append((oid, topic, key, record))

    for d in batch.decisions:
        for r in d.remedies:
            add(r.remedy_id, ACTIONS, r.user_id, r)
        for c in d.reviews:
            add(c.review_id, REVIEWS, c.case_id, c)
        for n in d.notices:
            add(n.notice_id, NOTICES, n.user_id, n)
    for dl in batch.dead:
        add(dl.id, DEADLETTER, (dl.key or b"").decode("utf-8", "replace"), dl)
    return out


def encode_outputs(codec: Codec, outputs: Sequence[tuple[str, str, str, Any]]
                   ) -> tuple[list[Record], list[RemedyEntry]]:
    """Records for the outputs, and the ledger's index entries of the remedies among them (the
    same bytes)."""
    records: list[Record] = []
    remedies: list[RemedyEntry] = []
    encode, encode_obj = codec.encode, codec.encode_obj
    for oid, topic, key, rec in outputs:
        if topic == ACTIONS:
            value = encode_obj("remedy_action", rec)
            remedies.append((rec.user_id, oid, value))
        elif topic == REVIEWS:
            value = encode_obj("review_case", rec)
        elif topic == NOTICES:
            value = encode_obj("user_notice", rec)
        else:
            value = encode("dead_letter", {
                "source_topic": rec.source.topic, "source_partition": rec.source.partition,
                "source_offset": rec.source.offset, "key": rec.key, "value": rec.value,
                "stage": rec.stage, "error_class": rec.error_class,
                "error_message": rec.error_message[:2000], "failed_at": int(time.time() * 1000)})
        records.append((oid, topic, key.encode(), value))
    return records, remedies


async def retry_forever(what: str, op: Callable[[], Awaitable[T]]) -> T:
    """Infrastructure failures (broker, Redis) are waited out, never turned into lost records."""
    delay = 0.2
    while True:
        try:
            return await op()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any I/O failure is retried
            log.warning("%s failed (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class DeliveryError(Exception):
    """The broker did not take every record of a batch (after librdkafka's own retries)."""


class _Acks:
    """Counts the delivery reports of one batch; resolves a future on the event loop when the
    last one arrives. Delivery reports run on the producer's poll thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int):
        self.loop = loop
        self.left = n
        self.errors: list[KafkaError] = []
        self.done = loop.create_future()

    def __call__(self, err: KafkaError | None, msg: object) -> None:
        if err is not None:
            self.errors.append(err)
        self.left -= 1
        if self.left == 0:
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if self.done.done():
            return
        if self.errors:
            self.done.set_exception(DeliveryError(f"{len(self.errors)} records not delivered: {self.errors[0]}"))
        else:
            self.done.set_result(None)


class AsyncProducer:
    """librdkafka's producer on asyncio: records are handed over without awaiting anything, one
    thread serves delivery reports, and a batch is awaited as a whole. Network I/O, batching and
    retries stay in librdkafka's threads, off the event loop (aiokafka's pure-Python producer
    cost ~20 us of loop time per record in the bench profiles)."""

    def __init__(self, settings: Settings):
        self._p = Producer(settings.producer_config(**{
            "enable.idempotence": True, "acks": "all", "linger.ms": 1, "batch.size": 1 << 20,
            "queue.buffering.max.messages": 500_000, "message.timeout.ms": 120_000}))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="producer-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._p.poll(0.05)

    async def send_batch(self, records: Sequence[tuple[str, bytes | None, bytes, int | None]]) -> None:
        """(topic, key, value, partition or None) each; returns when the broker acked them all."""
        if not records:
            return
        acks = _Acks(asyncio.get_running_loop(), len(records))
        produce = self._p.produce
        for topic, key, value, partition in records:
            while True:
                try:
                    if partition is None:
                        produce(topic, value, key, on_delivery=acks)
                    else:
                        produce(topic, value, key, partition, on_delivery=acks)
                    break
                except BufferError:          # librdkafka's queue is full: let it drain
                    await asyncio.sleep(0.01)
        await acks.done

    def close(self) -> None:
        self._p.flush(30)
        self._stop.set()
        self._poller.join(5)


class Emitter:
    def __init__(self, settings: Settings, codec: Codec, ledger: Ledger):
        self.settings = settings
        self.codec = codec
        self.ledger = ledger
        self.producer: AsyncProducer | None = None
        self.topic = {name: settings.topic(name) for name in (ACTIONS, REVIEWS, NOTICES, DEADLETTER)}
        self.published = Counter()
        self._serial = asyncio.Lock()   # one emit at a time: in-flight marks assume it

    async def start(self) -> None:
        self.producer = AsyncProducer(self.settings)

    async def stop(self) -> None:
        if self.producer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.producer.close)
            self.producer = None

    async def emit(self, batch: Batch, *, outcome_topic: str | None = None) -> int:
        """Publish what the ledger has not seen; returns how many records were produced."""
        async with self._serial:
            return await self._emit(batch, outcome_topic)

    async def emit_encoded(self, records: Sequence[Record], remedies: Sequence[RemedyEntry]) -> int:
        """Publish records encoded elsewhere (a sweep process) that the ledger has not seen."""
        async with self._serial:
            ids = [r[0] for r in records]
            already = await retry_forever("ledger check", lambda: self.ledger.issued(ids)) if ids else set()
            fresh = [r for r in records if r[0] not in already]
            return await self._publish(fresh, [e for e in remedies if e[1] not in already], None, None)

    async def _emit(self, batch: Batch, outcome_topic: str | None) -> int:
        outputs = batch_outputs(batch)
        ids = [o[0] for o in outputs]
        already = await retry_forever("ledger check", lambda: self.ledger.issued(ids)) if ids else set()
        fresh, remedies = encode_outputs(self.codec, [o for o in outputs if o[0] not in already])
        return await self._publish(fresh, remedies, outcome_topic, batch.outcomes)

    async def _publish(self, fresh: Sequence[Record], remedies: Sequence[RemedyEntry],
                       outcome_topic: str | None, outcomes: Counter | None) -> int:
        """In-flight mark, produce, broker ack, ledger write (+ outcome counters)."""
        if fresh:
            worker = self.settings.worker_id
            await retry_forever("in-flight mark", lambda: self.ledger.mark_inflight(worker, int(time.time() * 1000)))
            await retry_forever("produce", lambda: self._produce(fresh))
            new_ids = [r[0] for r in fresh]
            counts = (outcome_topic, outcomes) if outcome_topic and outcomes else None
            await retry_forever("ledger write", lambda: self.ledger.record(new_ids, remedies, worker, counts))
            for _, topic, _, _ in fresh:
                self.published[topic] += 1
        elif outcome_topic and outcomes:
            await retry_forever("outcome counters", lambda: self.ledger.count_outcomes(outcome_topic, outcomes))
        return len(fresh)

    async def _produce(self, records: Sequence[Record]) -> None:
        assert self.producer is not None
        topics = self.topic
        await self.producer.send_batch([(topics[topic], key, value, None) for _, topic, key, value in records])
