"""The one producer: librdkafka with per-batch delivery accounting, for asyncio and for commands.

A batch is handed to librdkafka without waiting on anything, delivery reports are counted by
one poll thread, and the batch is awaited (or waited for) as a whole. Network I/O, batching and
retries stay in librdkafka's threads, off the event loop.

A batch that is not delivered raises a `ProduceError` split by what retrying would do:
- `RetriableProduceError`: the broker or network is away for now; the same batch can succeed
  later (the worker waits it out, see worker.retry).
- `PermanentProduceError`: the same records will fail the same way (larger than the broker
  takes, not authorised, the topic does not exist, a fatal producer error). Retrying would
  stall a partition forever; the caller dead-letters those records or stops with one line.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

from confluent_kafka import KafkaError, KafkaException, Producer as _Producer

from streams.errors import (GroupFenced, PermanentProduceError, ProduceError, RetriableProduceError,
                            TransactionFailed)
from streams.settings import Settings

log = logging.getLogger(__name__)

OutRecord = tuple[str, bytes | None, bytes | None, int | None]   # (topic, key, value, partition or None)
Commit = tuple[Sequence[Any], Any]      # (TopicPartitions to commit, the consumer's group metadata)

# Errors that no retry can mend. Everything else librdkafka reports after its own retries
# (timeouts, leader changes, a broker restart) is worth another try.
PERMANENT_CODES = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD,
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._AUTHENTICATION, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_PARTITION, KafkaError._INVALID_ARG, KafkaError.INVALID_CONFIG,
    KafkaError.POLICY_VIOLATION,
})

# What every producer of makegood's records needs: idempotence (no duplicates from
# librdkafka's own retries) and acks from all in-sync replicas.
SAFE = {"enable.idempotence": True, "acks": "all"}
QUEUE_FULL_WAIT_S = 0.01


def is_permanent(err: KafkaError) -> bool:
    return err.fatal() or err.code() in PERMANENT_CODES


def describe(err: KafkaError) -> str:
    return f"{err.name()}: {err.str()}"


class Deliveries:
    """The delivery reports of one batch; `settled()` is called (on the poll thread) once every
    record has one. The object itself is every record's callback: no per-record closure or
    lock on the hot path (a counter from itertools is atomic under the GIL). Failures keep the
    failed record's key and value and are matched to their index in the batch only when asked.
    With `track=True` (for callers that need to know where each record landed), each record
    gets its own callback that notes its (partition, offset)."""

    def __init__(self, records: Sequence[OutRecord], settled: Callable[[], None] = lambda: None,
                 *, track: bool = False):
        self.records = records
        self.n = len(records)
        self._failed: list[tuple[KafkaError, bytes | None, bytes | None]] = []
        self._count = itertools.count(1)
        self._settled = settled
        self.positions: list[tuple[int, int]] | None = [(-1, -1)] * self.n if track else None
        if self.n == 0:
            settled()

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._failed.append((err, msg.key(), msg.value()))
        if next(self._count) == self.n:
            self._settled()

    def callback(self, index: int) -> Callable[[KafkaError | None, Any], None]:
        if self.positions is None:
            return self
        positions = self.positions

        def report(err: KafkaError | None, msg: Any) -> None:
            if err is None:
                positions[index] = (msg.partition(), msg.offset())
            self(err, msg)
        return report

    def refused(self, index: int, err: KafkaError) -> None:
        """produce() itself refused the record (e.g. larger than message.max.bytes)."""
        _, key, value, _ = self.records[index]
        self._failed.append((err, key, value))
        if next(self._count) == self.n:
            self._settled()

    def failures(self) -> list[tuple[int, KafkaError]]:
        """(index in the batch, error) of every failed record, in batch order."""
        pending: dict[tuple[bytes | None, bytes | None], list[KafkaError]] = {}
        for err, key, value in self._failed:
            pending.setdefault((key, value), []).append(err)
        out = []
        for i, (_, key, value, _) in enumerate(self.records):
            errs = pending.get((key, value))
            if errs:
                out.append((i, errs.pop(0)))
        return out

    def error(self, what: str = "records") -> ProduceError | None:
        """None when every record was delivered; else the error to raise."""
        if not self._failed:
            return None
        failures = self.failures()
        message = f"{len(failures)} of {self.n} {what} not delivered (first: {describe(failures[0][1])})"
        if any(is_permanent(err) for _, err in failures):
            return PermanentProduceError(message, failures)
        return RetriableProduceError(message, failures)


class Producer:
    """librdkafka's producer with batch delivery accounting; one poll thread serves reports."""

    def __init__(self, settings: Settings, **config: object):
        self._p = _Producer(settings.producer_config(**{**SAFE, **config}))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="producer-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        # Every batch in flight is settled by this thread: if it died (poll() re-raises what a
        # callback raised), each later batch would wait for its delivery reports forever.
        while not self._stop.is_set():
            try:
                self._p.poll(0.05)
            except Exception:
                log.exception("producer poll: a delivery or error callback failed; polling on")
                time.sleep(0.05)

    def list_topics(self, topic: str | None = None, timeout: float = 10) -> Any:
        return self._p.list_topics(topic, timeout=timeout)

    def _enqueue(self, records: Sequence[OutRecord], deliveries: Deliveries) -> Iterator[None]:
        """Hand the records to librdkafka; yields whenever its queue is full (the caller waits a
        moment, asynchronously or not, while the poll thread drains it)."""
        produce = self._p.produce
        for i, (topic, key, value, partition) in enumerate(records):
            callback = deliveries.callback(i)
            while True:
                try:
                    if partition is None:
                        produce(topic, value, key, on_delivery=callback)
                    else:
                        produce(topic, value, key, partition, on_delivery=callback)
                    break
                except BufferError:
                    yield
                except KafkaException as exc:   # refused before sending, e.g. too large
                    deliveries.refused(i, exc.args[0])
                    break

    async def send_batch(self, records: Sequence[OutRecord]) -> None:
        """Returns when the broker acknowledged every record; raises a ProduceError otherwise."""
        if not records:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def settled() -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        deliveries = Deliveries(records, settled)
        for _ in self._enqueue(records, deliveries):
            await asyncio.sleep(QUEUE_FULL_WAIT_S)
        await done
        error = deliveries.error()
        if error is not None:
            raise error

    def send_batch_sync(self, records: Sequence[OutRecord], timeout: float) -> list[tuple[int, int]]:
        """send_batch for blocking code (commands, the replay, the demo)."""
        if not records:
            return []
        done = threading.Event()
        deliveries = Deliveries(records, done.set, track=True)
        for _ in self._enqueue(records, deliveries):
            time.sleep(QUEUE_FULL_WAIT_S)
        if not done.wait(timeout):
            raise RetriableProduceError(f"not every one of {len(records)} records had a delivery "
                                        f"report within {timeout:.0f} s")
        error = deliveries.error()
        if error is not None:
            raise error
        assert deliveries.positions is not None
        return deliveries.positions

    def close(self, timeout: float = 30) -> None:
        self._p.flush(timeout)
        self._stop.set()
        self._poller.join(5)


# ----------------------------------------------------------------------------- transactions

# What send_offsets_to_transaction says when this member no longer owns what it consumed: the
# group moved on (a paused, partitioned or slow worker). Its transaction is aborted and its
# batch is someone else's now.
GROUP_FENCED_CODES = frozenset({
    KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.FENCED_INSTANCE_ID,
})
TXN_TIMEOUT_S = 30
# librdkafka does not always honour the timeout of a transactional call: a request to a group
# coordinator it cached before a broker restart can wait forever (librdkafka#5456, #5511: seen
# here as send_offsets_to_transaction blocked for minutes after the local broker came back).
# Past this, the call is taken as hung and the producer as lost: a new one with the same
# transactional.id fences it, and the coordinator aborts what it left open.
HUNG_S = TXN_TIMEOUT_S + 15


class TransactionalProducer(Producer):
    """The producer in Kafka transactions (KIP-447): a batch's outputs and the consumer offsets
    they answer are committed together, or not at all. `transact` raises
    - `GroupFenced` when the consumer group no longer counts this member as the owner of what
      it consumed: the transaction is aborted, nothing of it ever becomes visible to a
      read-committed reader, and the caller drops the batch (the new owner does it again);
    - `ProduceError` (retriable or permanent) after aborting, when the records were not all
      delivered;
    - `TransactionFailed` after aborting for anything else abortable (retry the batch), or
      with `fatal` set when the producer itself was fenced (e.g. its transaction timed out
      while the process was paused): close it and make a new one before the next batch.
    Every blocking librdkafka call runs in a thread, off the event loop."""

    def __init__(self, settings: Settings, transactional_id: str, **config: object):
        super().__init__(settings, **{"transactional.id": transactional_id,
                                      "transaction.timeout.ms": TXN_TIMEOUT_S * 1000, **config})
        self._p.init_transactions(TXN_TIMEOUT_S)
        # the blocking transactional calls run here, one at a time: one that hangs holds this
        # producer's thread only, never a thread of the event loop's shared pool
        self._txn_thread = ThreadPoolExecutor(1, thread_name_prefix="txn")
        self.hung_s = HUNG_S
        self.hung = False

    async def transact(self, records: Sequence[OutRecord], offsets: Sequence[Any] = (),
                       group_metadata: Any = None) -> tuple[float, float]:
        """Produce `records` and commit `offsets` for the group, atomically; returns the seconds
        the records took to be acknowledged and the seconds the offsets and commit took."""
        # a producer the transaction coordinator fenced meanwhile (its last transaction timed
        # out, e.g. across a broker restart) fails here: TransactionFailed(fatal), so the caller
        # makes a new one instead of the error escaping unclassified. Off the event loop like
        # every transactional call: librdkafka waits for its own main thread without a limit.
        await self._bounded("begin", self._p.begin_transaction)
        started = time.monotonic()
        try:
            await self.send_batch(records)
            acked = time.monotonic()
            if offsets:
                await self._bounded("send offsets", lambda: self._p.send_offsets_to_transaction(
                    list(offsets), group_metadata, TXN_TIMEOUT_S))
            await self._bounded("commit", lambda: self._p.commit_transaction(TXN_TIMEOUT_S))
            return acked - started, time.monotonic() - acked
        except BaseException as exc:
            fatal = isinstance(exc, TransactionFailed) and exc.fatal
            if not fatal:
                try:
                    await self._bounded("abort", self._abort)
                except TransactionFailed as hung:    # the abort hung: this producer is lost
                    raise hung from exc
            raise

    async def _bounded(self, what: str, op: Callable[[], None]) -> None:
        """`_call(what, op)` on this producer's thread, waited for at most `hung_s` seconds;
        past that: TransactionFailed(fatal), and this producer is not to be used again."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(self._txn_thread, self._call, what, op), self.hung_s)
        except asyncio.TimeoutError:
            self.hung = True
            log.warning("transactional producer: %s had no answer within %.0f s although librdkafka was "
                        "given %d s; replacing the producer", what, self.hung_s, TXN_TIMEOUT_S)
            raise TransactionFailed(f"{what}: no answer within {self.hung_s:.0f} s", fatal=True) from None

    def _call(self, what: str, op: Callable[[], None]) -> None:
        """A transactional call, retried while librdkafka says it is retriable."""
        for attempt in range(5):
            try:
                op()
                return
            except KafkaException as exc:
                err = exc.args[0]
                # _CONFLICT: an earlier call of this producer has not returned (it hung, see
                # HUNG_S): nothing more can be done with it
                if err.fatal() or err.code() == KafkaError._CONFLICT:
                    raise TransactionFailed(f"{what}: {describe(err)}", fatal=True) from None
                if err.code() in GROUP_FENCED_CODES:
                    raise GroupFenced(f"{what}: {describe(err)}") from None
                if err.retriable() and attempt < 4:
                    time.sleep(0.2 * 2 ** attempt)
                    continue
                raise TransactionFailed(f"{what}: {describe(err)}") from None

    def _abort(self) -> None:
        try:
            self._p.abort_transaction(TXN_TIMEOUT_S)
        except KafkaException:
            pass     # nothing to abort, or the producer is fenced: reset() follows

    def close(self, timeout: float = 30) -> None:
        # a hung call keeps its thread; the thread is abandoned, not waited for
        self._txn_thread.shutdown(wait=False, cancel_futures=True)
        super().close(timeout=0 if self.hung else timeout)
