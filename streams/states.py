"""Entitlement states: a batched consumer of entitlement.states.v1 and the in-memory store it fills.

Why not a faust agent: faust hands every message through its own machinery (two asyncio tasks
per message in the fetcher, then the conductor and the stream), which tops out near 5,000
events/s on a 2-core machine with an agent that does nothing at all (`python -m bench --only
faust`, bench/faust_floor.py).
Entitlement states are the high-volume input (tens of millions of users), so they are read
with librdkafka in batches of up to BATCH records instead. Damage reports, which come at
human rates, stay on a faust agent.

- Group: `<ns>.makegood.entitlements`, its own consumer group (faust's group speaks its own
  assignment protocol, which a plain client cannot join). Partitions are shared among the
  workers like any Kafka group; offsets are committed only after a batch's outputs are acked
  and ledgered (at least once; the ledger makes re-processing harmless).
- Store: key -> tables.pack_entitlement(partition, offset, updated_at, raw Avro). There is no
  changelog topic: entitlement.states.v1 is compacted, so it *is* every entitlement's latest
  state. On assignment a worker restores its partitions from the topic itself, from the start
  up to the group's committed offsets (what lies above them it consumes and decides as usual).
  Restoring stores raw bytes without decoding them; a key seen twice is decoded to keep the
  newer state (newer `updated_at` wins, as on arrival), and an invalid record never replaces a
  valid one. Records are decoded and validated again when a sweep decides them.
- Threads: the librdkafka consumer is only ever called from one executor thread. Rebalance
  callbacks run in that thread (inside `consume`); they hand their work to the event loop and
  wait for it, so the store and the owned-partition set only change on the loop, under the
  pipeline lock.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from processors.model import EntitlementState

from .codec import Codec
from .settings import Settings
from .tables import UNKNOWN_UPDATED_AT, entitlement_header, entitlement_raw, pack_entitlement
from .topics import ENTITLEMENTS

if TYPE_CHECKING:
    from processors.policy import Policy

log = logging.getLogger(__name__)

BATCH = 2000              # records per consume() call
POLL_S = 0.05             # how long consume() waits for the first record
RESTORE_CHUNK = 10_000

Validate = Callable[[EntitlementState, "Policy"], None]


class StateStore:
    """The latest valid state of every entitlement in the partitions this worker owns."""

    def __init__(self, codec: Codec, policy: "Policy", validate: Validate):
        self.codec = codec
        self.policy = policy
        self.validate = validate
        self.data: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self.data)

    def updated_at(self, blob: bytes) -> int:
        """updated_at of a stored state (decoded when the restore did not need to know it)."""
        ts = entitlement_header(blob)[2]
        if ts == UNKNOWN_UPDATED_AT:
            ts = self.codec.decode_obj("entitlement_state", entitlement_raw(blob)).updated_at
        return ts

    def is_stale(self, key: bytes, updated_at: int) -> bool:
        """A newer state of this entitlement is already stored."""
        prev = self.data.get(key)
        return prev is not None and self.updated_at(prev) > updated_at

    def put(self, key: bytes, partition: int, offset: int, updated_at: int, raw: bytes) -> None:
        self.data[key] = pack_entitlement(partition, offset, updated_at, raw)

    def drop_partitions(self, partitions: set[int]) -> int:
        gone = [k for k, v in self.data.items() if entitlement_header(v)[0] in partitions]
        for k in gone:
            del self.data[k]
        return len(gone)


def restore_partition_states(store: StateStore, messages: Sequence[Any], found: dict[bytes, bytes]) -> None:
    """Fold a chunk of (key, value, partition, offset) records, read in offset order, into `found`.

    The last record of a key wins (compaction), except that a state older than the stored one
    (by updated_at) or an invalid one never replaces a valid one; a tombstone removes the key."""
    for key, value, partition, offset in messages:
        if key is None:
            continue
        if value is None:
            found.pop(key, None)
            continue
        prev = found.get(key)
        if prev is None:
            found[key] = pack_entitlement(partition, offset, UNKNOWN_UPDATED_AT, value)
            continue
        # seen twice: decide which one stands, as the live path would have (it never stored an
        # invalid state, and a newer updated_at wins)
        ent = _valid(store, value)
        if ent is None:
            continue
        prev_ent = _valid(store, entitlement_raw(prev))
        if prev_ent is None or prev_ent.updated_at <= ent.updated_at:
            found[key] = pack_entitlement(partition, offset, ent.updated_at, value)


def _valid(store: StateStore, raw: bytes) -> EntitlementState | None:
    try:
        ent = store.codec.decode_obj("entitlement_state", raw)
        store.validate(ent, store.policy)
        return ent
    except Exception:  # noqa: BLE001 - poison or invalid: it was dead-lettered when first consumed
        return None


class StateConsumer:
    """The entitlement group member of one worker: consume -> handle -> commit, batch by batch.

    `on_assign(partitions, kept, restored)` (kept: partitions whose stored states are still
    current; restored: states read back for the others) and `on_revoke(partitions)` are
    coroutines run on the event loop; `handle(messages)` processes one batch (and returns only
    when its outputs are ledgered)."""

    def __init__(self, settings: Settings, store: StateStore,
                 on_assign: Callable[[set[int], set[int], dict[bytes, bytes]], Any],
                 on_revoke: Callable[[set[int]], Any],
                 handle: Callable[[list[Message]], Any]):
        self.settings = settings
        self.store = store
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
        committed = {tp.partition: tp.offset for tp in
                     consumer.committed([TopicPartition(self.topic, p) for p in parts], timeout=30)}
        keep = {p for p in parts if p in self.position and self.position[p] == committed[p]}
        bound = {p: max(committed[p], 0) for p in parts - keep}
        restored = self._restore(bound)
        self.position = {p: off for p, off in self.position.items() if p in keep}
        self._run_on_loop(self._on_assign(parts, keep, restored))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._stopping.is_set():
            return
        self._run_on_loop(self._on_revoke({tp.partition for tp in partitions}))

    def _restore(self, bound: dict[int, int]) -> dict[bytes, bytes]:
        """Every state of the partitions in `bound` below its offset, read from the topic."""
        found: dict[bytes, bytes] = {}
        if not any(bound.values()):
            return found
        reader = Consumer(self.settings.kafka_config(**{
            "group.id": self.group + ".restore", "enable.auto.commit": False,
            "enable.partition.eof": True, "fetch.wait.max.ms": 50}))
        try:
            remaining = {p for p, end in bound.items() if end > 0}
            reader.assign([TopicPartition(self.topic, p, 0) for p in sorted(remaining)])
            while remaining and not self._stopping.is_set():
                chunk = []
                for m in reader.consume(RESTORE_CHUNK, timeout=1.0):
                    p = m.partition()
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(p)     # the log ends below the committed offset
                        continue
                    off = m.offset()
                    if off < bound[p]:
                        chunk.append((m.key(), m.value(), p, off))
                    if off + 1 >= bound[p] and p in remaining:
                        remaining.discard(p)
                        reader.pause([TopicPartition(self.topic, p)])
                restore_partition_states(self.store, chunk, found)
        finally:
            reader.close()
        return found

    def _poll(self, commit: list[TopicPartition]) -> list[Message]:
        if self._consumer is None:
            self._open()
        assert self._consumer is not None
        if commit:
            try:
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
