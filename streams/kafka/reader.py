"""The one partition-range reader: offsets [start, end) of chosen partitions, then stop.

Every bounded read in makegood goes through `PartitionReader`: a worker restoring its
entitlement partitions, the catch-up of report partitions, the in-flight reconciliation, the
replay, the ledger rebuild and the incident report. It assigns partitions (never subscribes, so
it joins no group and moves nobody's offsets), never commits, and reads committed records only,
so what it sees is what billing sees.

A partition is finished when a record at or past its end arrives, when the broker says the
log ends there (partition EOF), or when the consumer's position has passed the end although no
record said so (offsets with no record: transaction markers, compacted-away keys). Nothing
arriving for `stall_s` is an error, never a silent short read.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Sequence

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, TopicPartition

from streams.errors import ReadError
from streams.progress import Progress
from streams.settings import Settings

CHUNK = 2000            # records per consume() call
STALL_S = 60.0          # nothing at all for this long: the read fails
GAP_CHECK_S = 1.0       # nothing for this long: compare positions with the ends
# A partition's offsets asked while its leader is not known yet (a topic created a moment ago)
# or is moving (a broker restarting) are asked again, for this long, before the read fails.
LEADER_WAIT_S = 30.0
LEADER_MOVING = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION, KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError._TRANSPORT,
})


@dataclass(frozen=True)
class Span:
    """Offsets [start, end) of one partition."""
    partition: int
    start: int
    end: int

    def __len__(self) -> int:
        return max(0, self.end - self.start)


class Raw(NamedTuple):
    """One record as read: its coordinates, key, value and broker timestamp (None if absent)."""
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None


class PartitionReader:
    """Reads offset ranges by partition assignment; never subscribes, never commits."""

    def __init__(self, settings: Settings, *, progress: bool = False, stall_s: float = STALL_S,
                 **config: object) -> None:
        self.settings = settings
        self.progress = progress
        self.stall_s = stall_s
        self.consumer = Consumer(settings.kafka_config(**{
            "group.id": settings.group(f"reader-{uuid.uuid4().hex}"), "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "enable.partition.eof": True, "isolation.level": "read_committed",
            "fetch.wait.max.ms": 100, **config}))

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> "PartitionReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ where to read

    def partitions(self, topic: str) -> list[int]:
        try:
            md = self.consumer.list_topics(topic, timeout=10)
        except KafkaException as exc:
            raise ReadError(f"cannot reach Kafka at {self.settings.bootstrap}: {exc}") from None
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            raise ReadError(f"topic {topic} does not exist on {self.settings.bootstrap} "
                            "(run `makegood topics create`)")
        return sorted(t.partitions)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        deadline = time.monotonic() + LEADER_WAIT_S
        while True:
            try:
                return self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if not isinstance(err, KafkaError) or err.code() not in LEADER_MOVING:
                    raise
                if time.monotonic() > deadline:
                    raise ReadError(f"no leader answered for {topic} partition {partition} on "
                                    f"{self.settings.bootstrap} within {LEADER_WAIT_S:.0f} s: {err.str()}") from None
                time.sleep(0.5)

    def whole(self, topic: str) -> list[Span]:
        """Every partition from its first offset to its end as of now."""
        return [Span(p, *self.watermarks(topic, p)) for p in self.partitions(topic)]

    def offset_at(self, topic: str, partition: int, ms: int) -> int:
        """The first offset stamped at or after `ms` (the end offset when nothing is that late)."""
        (tp,) = self.consumer.offsets_for_times([TopicPartition(topic, partition, ms)], timeout=10)
        return self.watermarks(topic, partition)[1] if tp.offset < 0 else tp.offset

    def since(self, topic: str, ms: int) -> list[Span]:
        """Per partition, from the first record stamped >= ms to the end as of now."""
        spans = []
        for p in self.partitions(topic):
            low, high = self.watermarks(topic, p)
            spans.append(Span(p, max(low, self.offset_at(topic, p, ms)), high))
        return spans

    def committed(self, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """A group's committed offset of each partition (0 where nothing is committed). Asked
        with a consumer that never joins the group, so it disturbs no assignment."""
        probe = Consumer(self.settings.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
        try:
            got = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
        finally:
            probe.close()
        return {tp.partition: max(tp.offset, 0) for tp in got}

    # ------------------------------------------------------------------ reading

    def batches(self, topic: str, spans: Sequence[Span], label: str = "", *,
                stop: Callable[[], bool] = lambda: False, chunk: int = CHUNK) -> Iterator[list[Raw]]:
        """The records of `spans`, in offset order per partition, a consume() call at a time."""
        spans = [s for s in spans if len(s)]
        if not spans:
            return
        ends = {s.partition: s.end for s in spans}
        remaining = set(ends)
        c = self.consumer
        tps = [TopicPartition(topic, s.partition, s.start) for s in spans]
        c.assign(tps)
        c.resume(tps)     # librdkafka keeps a partition paused across assignments (a reused reader)
        try:
            with Progress(sum(len(s) for s in spans), label, enabled=self.progress and bool(label)) as prog:
                quiet = time.monotonic()
                checked = quiet
                while remaining and not stop():
                    out: list[Raw] = []
                    for m in c.consume(chunk, 0.5):
                        p = m.partition()
                        err = m.error()
                        if err is not None:
                            if err.code() == KafkaError._PARTITION_EOF:
                                self._finish(topic, p, remaining)
                            elif err.fatal() or err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                                raise ReadError(f"reading {topic}: {err.str()}")
                            continue
                        off = m.offset()
                        if p not in remaining or off >= ends[p]:
                            self._finish(topic, p, remaining)
                            continue
                        kind, ts = m.timestamp()
                        out.append(Raw(p, off, m.key(), m.value(), None if kind == TIMESTAMP_NOT_AVAILABLE else ts))
                        if off >= ends[p] - 1:
                            self._finish(topic, p, remaining)
                    now = time.monotonic()
                    if out:
                        quiet = checked = now
                        prog.advance(len(out))
                        yield out
                        continue
                    if now - checked >= GAP_CHECK_S and remaining:
                        checked = now
                        for tp in c.position([TopicPartition(topic, p) for p in remaining]):
                            if tp.offset >= ends[tp.partition]:
                                self._finish(topic, tp.partition, remaining)
                    if now - quiet >= self.stall_s and remaining:
                        raise ReadError(f"reading {topic}: nothing arrived for {self.stall_s:.0f} s "
                                        f"(partitions {sorted(remaining)} unfinished)")
        finally:
            c.unassign()

    def _finish(self, topic: str, partition: int, remaining: set[int]) -> None:
        if partition in remaining:
            remaining.discard(partition)
            self.consumer.pause([TopicPartition(topic, partition)])

    def read(self, topic: str, spans: Sequence[Span], label: str = "") -> Iterator[Raw]:
        """The records of `spans`, one at a time."""
        for batch in self.batches(topic, spans, label):
            yield from batch
