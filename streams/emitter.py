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
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence, TypeVar

from aiokafka import AIOKafkaProducer

from processors.model import Decision, RemedyAction, Source

from .codec import Codec
from .ledger import Ledger
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


class Emitter:
    def __init__(self, settings: Settings, codec: Codec, ledger: Ledger):
        self.settings = settings
        self.codec = codec
        self.ledger = ledger
        self.producer: AIOKafkaProducer | None = None
        self.topic = {name: settings.topic(name) for name in (ACTIONS, REVIEWS, NOTICES, DEADLETTER)}
        self.published = Counter()

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap, enable_idempotence=True, acks="all",
            linger_ms=5, max_batch_size=256 * 1024, request_timeout_ms=30000)
        await retry_forever("producer start", self.producer.start)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    def _records(self, batch: Batch) -> tuple[list[tuple[str, str, bytes, bytes]], list[RemedyAction]]:
        """(id, topic, key, value) for every output in the batch, in a stable order, once each."""
        out: list[tuple[str, str, bytes, bytes]] = []
        remedies: list[RemedyAction] = []
        seen: set[str] = set()

        def add(oid: str, topic: str, key: str, value: bytes) -> bool:
            if oid in seen:
                return False
            seen.add(oid)
            out.append((oid, topic, key.encode(), value))
            return True

        encode = self.codec.encode_obj
        for d in batch.decisions:
            for r in d.remedies:
                if add(r.remedy_id, ACTIONS, r.user_id, encode("remedy_action", r)):
                    remedies.append(r)
            for c in d.reviews:
                add(c.review_id, REVIEWS, c.case_id, encode("review_case", c))
            for n in d.notices:
                add(n.notice_id, NOTICES, n.user_id, encode("user_notice", n))
        for dl in batch.dead:
            add(dl.id, DEADLETTER, (dl.key or b"").decode("utf-8", "replace"), self.codec.encode("dead_letter", {
                "source_topic": dl.source.topic, "source_partition": dl.source.partition,
                "source_offset": dl.source.offset, "key": dl.key, "value": dl.value, "stage": dl.stage,
                "error_class": dl.error_class, "error_message": dl.error_message[:2000],
                "failed_at": int(time.time() * 1000)}))
        return out, remedies

    async def emit(self, batch: Batch, *, outcome_topic: str | None = None) -> int:
        """Publish what the ledger has not seen; returns how many records were produced."""
        records, remedies = self._records(batch)
        ids = [r[0] for r in records]
        already = await retry_forever("ledger check", lambda: self.ledger.issued(ids)) if ids else set()
        fresh = [r for r in records if r[0] not in already]
        if fresh:
            worker = self.settings.worker_id
            await retry_forever("in-flight mark", lambda: self.ledger.mark_inflight(worker, int(time.time() * 1000)))
            await retry_forever("produce", lambda: self._produce(fresh))
            new_ids = {r[0] for r in fresh}
            await retry_forever("ledger write", lambda: self.ledger.record(
                new_ids, [r for r in remedies if r.remedy_id in new_ids], worker))
            for _, topic, _, _ in fresh:
                self.published[topic] += 1
        if outcome_topic and batch.outcomes:
            await retry_forever("outcome counters",
                                lambda: self.ledger.count_outcomes(outcome_topic, batch.outcomes))
        return len(fresh)

    async def _produce(self, records: Sequence[tuple[str, str, bytes, bytes]]) -> None:
        assert self.producer is not None
        futures = [await self.producer.send(self.topic[topic], value=value, key=key)
                   for _, topic, key, value in records]
        await asyncio.gather(*futures)
