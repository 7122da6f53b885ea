"""The entitlement group member: a batched librdkafka consumer of entitlement.states.v1.

Why not a faust agent: faust hands every message through its own machinery (two asyncio tasks
per message in the fetcher, then the conductor and the stream), which tops out near 5,000
events/s on a 2-core machine with an agent that does nothing at all (`python -m bench --only
faust`, bench/faust_floor.py). Entitlement states are the high-volume input (tens of millions
of users), so they are read with librdkafka in batches of up to BATCH records instead. Damage
reports, which come at human rates, stay on a faust agent.

- Group: `<ns>.makegood.entitlements`, its own consumer group (faust's group speaks its own
  assignment protocol, which a plain client cannot join). Partitions are shared among the
  workers like any Kafka group; offsets are committed only after a batch's outputs are acked
  and ledgered (at least once; the ledger makes re-processing harmless).
- Restore: on assignment, a partition this worker did not hold up to the committed offset is
  read back from the compacted topic, from the start up to the group's committed offset (what
  lies above it is consumed and decided as usual), without decoding (worker.store).
- Threads: the librdkafka consumer is only ever called from one executor thread. Rebalance
  callbacks run in that thread (inside `consume`); they hand their work to the event loop and
  wait for it, so the store and the owned-partition set only change on the loop, under the
  worker's gate.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streams.decide.admit import Admission
from streams.kafka.reader import PartitionReader, Span
from streams.kafka.topics import ENTITLEMENTS
from streams.settings import Settings
from streams.worker.observe import Observer
from streams.worker.store import restore_partition_states

log = logging.getLogger(__name__)

BATCH = 2000              # records per consume() call
POLL_S = 0.05             # how long consume() waits for the first record
RESTORE_CHUNK = 10_000


class StateConsumer:
    """The entitlement group member of one worker: consume -> handle -> commit, batch by batch.

    `on_assign(partitions, kept, restored)` (kept: partitions whose stored states are still
    current; restored: states read back for the others) and `on_revoke(partitions)` are
    coroutines run on the event loop; `handle(messages)` processes one batch (and returns only
    when its outputs are ledgered)."""

    def __init__(self, settings: Settings, admission: Admission,
                 on_assign: Callable[[set[int], set[int], dict[bytes, bytes]], Any],
                 on_revoke: Callable[[set[int]], Any],
                 handle: Callable[[list[Message]], Any], observer: Observer | None = None):
        self.settings = settings
        self.observer = observer or Observer(namespace=settings.namespace)   # restore progress, commit time
        self.admission = admission
        self.topic = settings.topic(ENTITLEMENTS)
        self.group = settings.topic("makegood.entitlements")
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._handle = handle
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="entitlements")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Consumer | None = None
        self._stopping = threading.Event()
        self.consumed = 0
        # next offset this worker has processed and committed, per partition it held
        self.position: dict[int, int] = {}

    # ---------------------------------------------------------------- executor thread

    def _config(self) -> dict:
        return self.settings.kafka_config(**{
            "group.id": self.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1_000, "fetch.wait.max.ms": 100,
            "partition.assignment.strategy": "range"})

    def _open(self) -> None:
        c = Consumer(self._config())
        c.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked)
        self._consumer = c

    def _run_on_loop(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Keep the states of partitions nobody else processed since we held them (the usual
        case when a rebalance hands a worker back what it had); restore the others."""
        if self._stopping.is_set():
            return
        parts = {tp.partition for tp in partitions}
        self.observer.restore_started(sorted(parts), 0)     # not ready from here until the catch-up
        try:
            committed = {tp.partition: tp.offset for tp in
                         consumer.committed([TopicPartition(self.topic, p) for p in parts], timeout=30)}
            keep = {p for p in parts if p in self.position and self.position[p] == committed[p]}
            bound = {p: max(committed[p], 0) for p in parts - keep}
            restored = self._restore(bound)
            self.position = {p: off for p, off in self.position.items() if p in keep}
            self._run_on_loop(self._on_assign(parts, keep, restored))
        finally:
            self.observer.restore_finished()

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._stopping.is_set():
            return
        self._run_on_loop(self._on_revoke({tp.partition for tp in partitions}))

    def _restore(self, bound: dict[int, int]) -> dict[bytes, bytes]:
        """Every state of the partitions in `bound` below its offset, read from the topic."""
        found: dict[bytes, bytes] = {}
        spans = [Span(p, 0, end) for p, end in sorted(bound.items()) if end > 0]
        if not spans:
            return found
        self.observer.restore_started(sorted(bound), sum(len(s) for s in spans))
        with PartitionReader(self.settings, **{"fetch.wait.max.ms": 50}) as reader:
            for chunk in reader.batches(self.topic, spans, stop=self._stopping.is_set, chunk=RESTORE_CHUNK):
                restore_partition_states(self.admission, chunk, found)
                self.observer.restore_progress(len(chunk))
        return found

    def _poll(self, commit: list[TopicPartition]) -> list[Message]:
        if self._consumer is None:
            self._open()
        assert self._consumer is not None
        if commit:
            try:
                with self.observer.committing():
                    self._consumer.commit(offsets=commit, asynchronous=False)
            except KafkaException as exc:   # fenced by a rebalance: the new owner re-reads these
                log.warning("entitlement offsets not committed (%s); their new owner re-decides them",
                            exc.args[0].str() if exc.args else exc)
        msgs = self._consumer.consume(BATCH, timeout=POLL_S)
        return [m for m in msgs if not self._skip(m)]

    @staticmethod
    def _skip(m: Message) -> bool:
        err = m.error()
        if err is None:
            return False
        log.warning("entitlement consumer: %s", err.str())
        return True

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # ---------------------------------------------------------------- event loop

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        loop = self._loop
        commit: list[TopicPartition] = []
        try:
            while True:
                msgs = await loop.run_in_executor(self._pool, self._poll, commit)
                commit = []
                if not msgs:
                    continue
                await self._handle(msgs)
                self.consumed += len(msgs)
                last: dict[int, int] = {}
                for m in msgs:
                    last[m.partition()] = m.offset() + 1
                self.position.update(last)
                commit = [TopicPartition(self.topic, p, off) for p, off in last.items()]
        finally:
            self._stopping.set()
            if commit:
                await loop.run_in_executor(self._pool, self._final_commit, commit)
            await loop.run_in_executor(self._pool, self._close)
            self._pool.shutdown(wait=False)

    def _final_commit(self, commit: list[TopicPartition]) -> None:
        if self._consumer is not None:
            try:
                self._consumer.commit(offsets=commit, asynchronous=False)
            except KafkaException as exc:
                log.warning("final entitlement commit failed: %s", exc)
