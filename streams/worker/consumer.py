"""A worker's consumer group member: batches from librdkafka, offsets committed in transactions.

Both inputs that are split among workers are read this way: entitlement states (group
`<ns>.makegood.entitlements`) and damage reports with their re-triage requests (group
`<ns>.makegood.reports`, the two topics co-partitioned, so the range assignor gives a worker
the same partition numbers of both). Why not faust: a faust agent tops out near 5,000
events/s here (bench/faust_floor.py), and faust's consumer cannot hand its group metadata to
a librdkafka producer, which is what lets the group fence a worker's transaction (KIP-447).

- Offsets are never committed by the consumer. Each batch's handler commits them with its
  outputs in one transaction (worker.emitter), with this member's group metadata
  (`commit_for`), so a member the group has moved on from cannot commit anything.
- Read committed: offsets a transaction has not finished committing are not handed out
  (`require_stable`), so a new owner starts exactly where the last committed batch ended.
- Restore: on assignment, a partition this worker did not hold up to the committed offsets is
  restored by the `restore` callable (the entitlement store from the compacted input, the
  cases from their changelog) before any of its records is handled.
- Threads: the librdkafka consumer is only ever called from one executor thread. Rebalance
  callbacks run in that thread (inside `consume`); they hand their work to the event loop and
  wait for it, so the worker's state changes only on the loop, under its gate — which also
  means a revocation waits for the batch in hand to commit or abort.
"""
from __future__ import annotations

import asyncio
import io
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Sequence

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, Message, TopicPartition

from streams.errors import GroupFenced, RegistryUnavailable
from streams.kafka.producer import Commit
from streams.settings import Settings
from streams.worker.observe import Observer
from streams.worker.retry import RegistryWait

log = logging.getLogger(__name__)

BATCH = 2000              # records per consume() call
POLL_S = 0.05             # how long consume() waits for the first record
# A member that has not asked for records this long leaves the group, so its partitions go to a
# worker that can make progress (librdkafka's heartbeats go on in its own threads even when
# this process is stuck; Kafka's default is 300 s). A batch is handled in well under a second;
# only an outage of Redis, Kafka or the registry holds one longer, and fencing makes a batch
# the group moved on from harmless (GroupFenced).
MAX_POLL_INTERVAL_MS = 120_000
# A batch still in hand after this long is logged with where every task of the worker waits.
STUCK_S = 90.0

Restore = Callable[[set[int], dict[tuple[str, int], int]], Any]   # (partitions, committed) -> restored


class GroupConsumer:
    """consume -> handle (which commits in its transaction) -> consume, batch by batch.

    `on_assign(partitions, kept, restored)` (kept: partitions whose state is still current;
    restored: what `restore` read back for the others) and `on_revoke(partitions)` are
    coroutines run on the event loop; `handle(messages, consumer)` processes one batch, commits
    it in its transaction with `consumer.commit_for(...)` and reports that with
    `consumer.committed(...)`, or raises GroupFenced when the group moved on."""

    def __init__(self, settings: Settings, name: str, topics: Sequence[str], restore: Restore,
                 on_assign: Callable[[set[int], set[int], Any], Awaitable[None]],
                 on_revoke: Callable[[set[int]], Awaitable[None]],
                 handle: Callable[[list[Message], "GroupConsumer"], Awaitable[None]],
                 observer: Observer | None = None, registry: RegistryWait | None = None):
        self.settings = settings
        self.name = name
        self.topics = list(topics)
        self.group = settings.group(name)
        self._restore = restore
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._handle = handle
        self.observer = observer or Observer(namespace=settings.namespace)   # restore, consumed
        self.assigning = False            # between an assignment and its restore being applied
        self.registry = registry or RegistryWait()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Consumer | None = None
        self._stopping = threading.Event()
        self._stop_requested = False
        self._rewind: list[TopicPartition] = []
        self.consumed = 0
        # the committed offset of each (topic, partition) this member holds: where it resumes
        self.position: dict[tuple[str, int], int] = {}

    # ---------------------------------------------------------------- for the handlers

    def commit_for(self, msgs: Sequence[Message], partitions: set[int]) -> Commit:
        """The offsets a batch commits (after its last record, for the partitions given) and
        this member's group metadata, for the batch's transaction."""
        last: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.partition() in partitions:
                last[(m.topic(), m.partition())] = m.offset() + 1
        return [TopicPartition(t, p, off) for (t, p), off in last.items()], self._metadata()

    def fence(self, partitions: set[int]) -> Commit:
        """The offsets this member holds for `partitions`, unchanged: a transaction that
        carries them commits nothing new, but only while the group counts this member as
        their owner (a sweep's transactions use it)."""
        tps = [TopicPartition(t, p, off) for (t, p), off in self.position.items() if p in partitions]
        return tps, self._metadata()

    def committed(self, offsets: Sequence[TopicPartition]) -> None:
        """A batch's transaction committed these offsets (called by the handler)."""
        for tp in offsets:
            self.position[(tp.topic, tp.partition)] = tp.offset

    def _metadata(self) -> Any:
        assert self._consumer is not None
        return self._consumer.consumer_group_metadata()

    # ---------------------------------------------------------------- executor thread

    def _config(self) -> dict:
        return self.settings.kafka_config(**{
            "group.id": self.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000, "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
            "fetch.wait.max.ms": 100, "partition.assignment.strategy": "range"})

    def _open(self) -> None:
        c = Consumer(self._config())
        c.subscribe(self.topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked)
        self._consumer = c

    def _run_on_loop(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Keep the state of partitions nobody else committed anything for since we held them
        (the usual case when a rebalance hands a worker back what it had); restore the others."""
        if self._stopping.is_set():
            return
        self.assigning = True
        try:
            self._assign(consumer, {tp.partition for tp in partitions})
        finally:
            self.assigning = False

    def _assign(self, consumer: Consumer, parts: set[int]) -> None:
        got = consumer.committed([TopicPartition(t, p) for t in self.topics for p in parts], timeout=30)
        committed = {(tp.topic, tp.partition): max(tp.offset, 0) if tp.offset != OFFSET_INVALID else 0
                     for tp in got}
        keep = {p for p in parts if all(self.position.get((t, p)) == committed[(t, p)] for t in self.topics)}
        restored = self._restore(parts - keep, committed) if parts - keep else None
        self.position = dict(committed)
        self._run_on_loop(self._on_assign(parts, keep, restored))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._stopping.is_set():
            return
        self._run_on_loop(self._on_revoke({tp.partition for tp in partitions}))

    def _poll(self) -> list[Message]:
        if self._consumer is None:
            self._open()
        c = self._consumer
        assert c is not None
        if self._rewind:
            rewind, self._rewind = self._rewind, []
            for tp in rewind:
                try:
                    c.seek(tp)
                except KafkaException:
                    pass            # no longer ours: its new owner starts from the committed offset
        msgs = c.consume(BATCH, timeout=POLL_S)
        return [m for m in msgs if not self._skip(m)]

    def _skip(self, m: Message) -> bool:
        err = m.error()
        if err is None:
            return False
        log.warning("%s consumer: %s", self.name, err.str())
        return True

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # ---------------------------------------------------------------- event loop

    def request_stop(self) -> None:
        """Finish the batch in hand, then leave the group."""
        self._stop_requested = True

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        loop = self._loop
        try:
            while not self._stop_requested:
                msgs = await loop.run_in_executor(self._pool, self._poll)
                if not msgs:
                    continue
                self.observer.consumed_batch(msgs)
                while True:
                    try:
                        await self._watched(msgs)
                        self.registry.resumed()
                    except GroupFenced as exc:
                        log.warning("%s batch of %d records dropped: the group moved on (%s); "
                                    "their new owner decides them", self.name, len(msgs), exc)
                        self._rewind = self._firsts(msgs)
                    except RegistryUnavailable as exc:   # nothing of the batch was committed: do it again
                        await self.registry.pause(f"{self.name} batch", exc)
                        continue
                    break
                self.consumed += len(msgs)
        finally:
            self._stopping.set()
            await loop.run_in_executor(self._pool, self._close)
            self._pool.shutdown(wait=False)

    async def _watched(self, msgs: list[Message]) -> None:
        """`handle(msgs)`; a batch still in hand after STUCK_S is logged once with the stack of
        every task of the worker (what it waits for), and again every STUCK_S without them."""
        task = asyncio.ensure_future(self._handle(msgs, self))
        waited = 0.0
        try:
            while not (await asyncio.wait({task}, timeout=STUCK_S))[0]:
                waited += STUCK_S
                where = f"; where each task waits:\n{task_stacks()}" if waited == STUCK_S else ""
                log.warning("%s batch of %d records still in hand after %.0f s%s", self.name, len(msgs),
                            waited, where)
        finally:
            if not task.done():
                task.cancel()
        task.result()

    @staticmethod
    def _firsts(msgs: Sequence[Message]) -> list[TopicPartition]:
        """Where a dropped batch began, per partition: read again from there if still ours."""
        first: dict[tuple[str, int], int] = {}
        for m in msgs:
            first.setdefault((m.topic(), m.partition()), m.offset())
        return [TopicPartition(t, p, off) for (t, p), off in first.items()]


def task_stacks() -> str:
    """Where every task on the running loop waits: its chain of awaits, outermost first."""
    lines = []
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        lines.append(f"  {task.get_name()}: " + " > ".join(_awaits(task.get_coro())))
    return "\n".join(lines)


def _awaits(coro: Any) -> list[str]:
    """file:line function of each coroutine down a chain of awaits (as far as it is visible)."""
    out = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            out.append(type(coro).__name__)
            break
        out.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} {frame.f_code.co_qualname}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
    return out
