"""Publishing decisions: ledger check, one Kafka transaction, ledger write — in that order.

The guarantee this gives billing (also in the README):
- a batch's outputs and the input offsets they answer are committed in one Kafka transaction
  (KIP-447: the offsets go in with the consumer's group metadata). A worker that lost its
  partitions (paused, partitioned from the network, slow) cannot commit: the group
  coordinator refuses its offsets, the transaction is aborted, and a reader with
  `isolation.level=read_committed` never sees any of it (`GroupFenced`; the batch is the new
  owner's). A sweep's transactions carry the owned partitions' offsets for the same reason;
- an id already in the ledger is never produced again, across restarts, rebalances and replays;
- an id is written to the ledger only after its transaction committed. A worker that dies
  between the commit and the ledger write leaves an in-flight mark; whoever takes over first
  reads the output topics from that mark and ledgers what is there (ledger.reconcile).

A batch the broker will never take (`PermanentProduceError`) is split by error: records larger
than the broker accepts become dead letters naming the reason (the rest of the batch is
committed); anything else permanent (not authorised, no such topic) stops the worker with one
line, because no later batch could succeed either.
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
from streams.errors import (GroupFenced, MakegoodError, PermanentProduceError, ProduceError, Stage,
                            TransactionFailed)
from streams.kafka.producer import Commit, OutRecord, TransactionalProducer, describe, is_permanent
from streams.kafka.topics import ACTIONS, DEADLETTER, NOTICES, REVIEWS, TOPIC_SCHEMAS
from streams.ledger.store import Ledger, RemedyEntry
from streams.settings import Settings
from streams.wire.codec import Codec
from streams.worker.observe import ActionTally, Observer
from streams.worker.retry import FIRST_DELAY_S, MAX_DELAY_S, retry_forever

log = logging.getLogger(__name__)

TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
PRODUCER_CONFIG = {"linger.ms": 1, "batch.size": 1 << 20, "queue.buffering.max.messages": 500_000,
                   "message.timeout.ms": 25_000}    # <= transaction.timeout.ms (kafka.producer)


class OutputRefused(MakegoodError):
    """The cluster refuses this worker's output for good; the worker stops with this line."""


def _raise(line: str) -> NoReturn:
    raise OutputRefused(line)


class Emitter:
    def __init__(self, settings: Settings, codec: Codec, ledger: Ledger,
                 on_refused: Callable[[str], NoReturn] = _raise, observer: Observer | None = None):
        self.settings = settings
        self.observer = observer or Observer(namespace=settings.namespace)   # metrics, dead-letter log
        self.codec = codec
        self.ledger = ledger
        self.on_refused = on_refused     # the worker stops here: see app.Worker._refused
        self.producer: TransactionalProducer | None = None
        self.topic = {name: settings.topic(name) for name in (ACTIONS, REVIEWS, NOTICES, DEADLETTER)}
        self.published = Counter()
        self._serial = asyncio.Lock()   # one transaction at a time (and in-flight marks assume it)

    def _new_producer(self) -> TransactionalProducer:
        return TransactionalProducer(self.settings, self.settings.topic(f"makegood.{self.settings.worker_id}"),
                                     **PRODUCER_CONFIG)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.producer = await retry_forever("transactional producer", lambda: loop.run_in_executor(
            None, self._new_producer))

    async def stop(self) -> None:
        if self.producer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.producer.close)
            self.producer = None

    async def emit(self, batch: Batch, *, outcome_topic: str | None = None, commit: Commit | None = None,
                   fence: Commit | None = None, also: Sequence[OutRecord] = ()) -> int:
        """Publish what the ledger has not seen (and `also`, records that are not outputs, such
        as the cases changelog), committing `commit`'s offsets in the same transaction; returns
        how many outputs were produced. `fence`: offsets that only make the transaction
        conditional on this worker still owning them (a sweep's), sent only when there is
        something to publish. Raises GroupFenced when the group moved on."""
        async with self._serial:
            outputs = batch_outputs(batch)
            ids = [o[0] for o in outputs]
            already = await self._issued(ids)
            new = [o for o in outputs if o[0] not in already]
            fresh, remedies = encode_outputs(self.codec, new)
            commit = commit or (fence if fresh else None)
            produced = await self._publish(fresh, remedies, outcome_topic, batch.outcomes, commit, also)
            self.observer.emitted(new, outcome_topic, batch.outcomes)
            return produced

    async def emit_encoded(self, records: Sequence[Record], remedies: Sequence[RemedyEntry],
                           actions: ActionTally | None = None, fence: Commit | None = None) -> int:
        """Publish records encoded elsewhere (a sweep process) that the ledger has not seen;
        `actions` (remedy id -> action, won) is for the metrics."""
        async with self._serial:
            already = await self._issued([r[0] for r in records])
            fresh = [r for r in records if r[0] not in already]
            produced = await self._publish(fresh, [e for e in remedies if e[1] not in already], None, None,
                                           fence if fresh else None, ())
            self.observer.emitted_encoded(fresh, actions or {})
            return produced

    async def send(self, records: Sequence[OutRecord]) -> None:
        """Records that are no outputs (re-triage requests), in a transaction of their own."""
        if records:
            async with self._serial:
                await self._transact([], [], None, records)

    async def _issued(self, ids: list[str]) -> set[str]:
        return await retry_forever("ledger check", lambda: self.ledger.issued(ids)) if ids else set()

    async def _publish(self, fresh: Sequence[Record], remedies: Sequence[RemedyEntry],
                       outcome_topic: str | None, outcomes: Counter | None, commit: Commit | None,
                       also: Sequence[OutRecord]) -> int:
        """In-flight mark, transaction (outputs + offsets), ledger write (+ outcome counters)."""
        counts = (outcome_topic, outcomes) if outcome_topic and outcomes else None
        worker = self.settings.worker_id
        if fresh:
            await retry_forever("in-flight mark", lambda: self.ledger.mark_inflight(worker, int(time.time() * 1000)))
        if fresh or also or commit:
            fresh, remedies = await self._transact(fresh, remedies, commit, also)
        if fresh:
            new_ids = [r[0] for r in fresh]
            await retry_forever("ledger write", lambda: self.ledger.record(new_ids, remedies, worker, counts))
        elif counts:
            await retry_forever("outcome counters", lambda: self.ledger.count_outcomes(*counts))
        for _, topic, _, _ in fresh:
            self.published[topic] += 1
        return len(fresh)

    async def _transact(self, fresh: Sequence[Record], remedies: Sequence[RemedyEntry], commit: Commit | None,
                        also: Sequence[OutRecord]) -> tuple[list[Record], list[RemedyEntry]]:
        """Commit the outputs, `also` and the offsets in one transaction, retrying what can be
        retried; returns the outputs committed (refused ones replaced by dead letters)."""
        fresh, remedies = list(fresh), list(remedies)
        offsets, metadata = commit if commit is not None else ((), None)
        delay = FIRST_DELAY_S
        while True:
            assert self.producer is not None
            topics = self.topic
            records = [(topics[topic], key, value, None) for _, topic, key, value in fresh] + list(also)
            try:
                self.observer.transaction(*await self.producer.transact(records, offsets, metadata))
                return fresh, remedies
            except GroupFenced:
                raise
            except PermanentProduceError as exc:
                fresh, remedies = self._set_aside(fresh, remedies, exc)
                continue
            except (ProduceError, TransactionFailed) as exc:
                log.warning("transaction failed (%s); retrying in %.1f s", exc, delay)
                if isinstance(exc, TransactionFailed) and exc.fatal:
                    await self.stop()
                    await self.start()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)

    def _set_aside(self, fresh: list[Record], remedies: list[RemedyEntry],
                   exc: PermanentProduceError) -> tuple[list[Record], list[RemedyEntry]]:
        """After a permanent failure: outputs the broker refused as too large are replaced by
        dead letters (the next attempt commits the rest); any other permanent error stops the
        worker, and so does a refused record that is not an output (the cases changelog)."""
        # only the permanent failures are refusals: records that timed out or were purged with
        # the failed transaction are simply sent again
        refused = {i: err for i, err in exc.failures if is_permanent(err)}
        others = [err for i, err in refused.items() if err.code() not in TOO_LARGE or i >= len(fresh)]
        if others:
            self.on_refused(f"the cluster refuses makegood's output: {describe(others[0])}; check that "
                            "the output topics exist (`makegood topics create`) and this worker's ACLs")
        dead = Batch()
        for i, err in refused.items():
            oid, topic, key, value = fresh[i]
            log.warning("output %s for %s (%d bytes) refused by the broker as too large; dead-lettered",
                        oid, topic, len(value))
            dead.fail(DeadLetter(self._lineage(topic, value), key, value, Stage.PROCESS,
                                 type(exc).__name__, f"{describe(err)}: output {oid} of {len(value):,} bytes"))
        letters, _ = encode_outputs(self.codec, batch_outputs(dead))
        kept = [r for i, r in enumerate(fresh) if i not in refused]
        kept_ids = {r[0] for r in kept}
        return kept + letters, [e for e in remedies if e[1] in kept_ids]

    def _lineage(self, topic: str, value: bytes) -> Source:
        """The input record an output answers (its `source`), which names its dead letter."""
        try:
            return self.codec.decode_obj(TOPIC_SCHEMAS[topic], value).source
        except Exception:  # noqa: BLE001 - an output we cannot read back: name the output topic
            return Source(self.topic[topic], -1, -1)
