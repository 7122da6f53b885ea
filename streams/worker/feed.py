"""Every worker's own view of every incident.

Outage windows are few, and every worker needs all of them to decide an entitlement on arrival
or to sweep its own partitions. Each worker reads the whole outage topic with a group-less
consumer from offset 0 and keeps the accepted revisions of each incident in memory (a
global table without a changelog: the topic keeps every revision). Nothing is committed: a
restart simply re-reads.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from processors.model import OutageWindow, Source
from processors.windows import IncidentHistory

from streams.decide.admit import Admission, Rejection
from streams.decide.outputs import DeadLetter
from streams.errors import RegistryUnavailable
from streams.settings import Settings
from streams.kafka.topics import OUTAGES
from streams.worker.retry import RegistryWait

log = logging.getLogger(__name__)

POLL_BATCH = 500
POLL_S = 0.5


class IncidentFeed:
    def __init__(self, settings: Settings, admission: Admission,
                 on_change: Callable[[OutageWindow | None], None], partitions: int, observer: Any = None,
                 registry: RegistryWait | None = None):
        self.settings = settings
        self.registry = registry or RegistryWait()
        self.observer = observer                 # counts what is consumed (worker.observe)
        self.positions: dict[int, int] = {p: 0 for p in range(partitions)}   # next offset, per partition
        self.partitions = partitions     # declared in deploy/topics.yaml
        self.admission = admission
        self.on_change = on_change
        self.histories: dict[str, IncidentHistory] = {}
        self.caught_up = asyncio.Event()
        self._dead: list[DeadLetter] = []     # taken by the sweeper into the emitter
        self.ignored = 0

    def apply(self, window: OutageWindow) -> bool:
        """Accept a revision if it is newer than what this incident has; True when accepted."""
        history = self.histories.get(window.incident_id, IncidentHistory())
        accepted = history.accept(window)
        if accepted is None:
            self.ignored += 1
            return False
        self.histories[window.incident_id] = accepted
        return True

    def take_dead(self) -> list[DeadLetter]:
        """The dead letters of windows read since the last call."""
        dead, self._dead = self._dead, []
        return dead

    def handle(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> OutageWindow | None:
        """The window if it is a new revision; None if it is old, or invalid (a dead letter)."""
        window = self.admission.check("outage_window", value, key)
        if isinstance(window, Rejection):
            self._dead.append(DeadLetter.of(Source(self.settings.topic(OUTAGES), partition, offset),
                                            key, value, window))
            return None
        return window if self.apply(window) else None

    async def run(self) -> None:
        """Read the outage topic from its start, forever; `caught_up` is set once every record
        that was there when the worker started has been applied. librdkafka runs in a thread
        of its own (a consume() call blocks), the windows are applied on the event loop."""
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(1, thread_name_prefix="incident-feed")
        topic = self.settings.topic(OUTAGES)
        consumer = await loop.run_in_executor(pool, self._open, topic)
        try:
            ends = await loop.run_in_executor(pool, self._ends, consumer, topic)
            pending = {p for p, end in ends.items() if end > 0}
            while True:
                if not pending and not self.caught_up.is_set():
                    log.info("incident feed caught up: %d incidents", len(self.histories))
                    self.caught_up.set()
                msgs = await loop.run_in_executor(pool, consumer.consume, POLL_BATCH, POLL_S)
                if msgs and self.observer is not None:
                    self.observer.consumed(OUTAGES, len(msgs))
                for m in msgs:
                    if m.error() is not None:
                        continue
                    while True:
                        try:
                            self._take(m.partition(), m.offset(), m.key(), m.value())
                            self.registry.resumed()
                            break
                        except RegistryUnavailable as exc:     # the window waits, nothing skips it
                            await self.registry.pause("the incident feed", exc)
                    self.positions[m.partition()] = m.offset() + 1
                    if m.offset() + 1 >= ends.get(m.partition(), 0):
                        pending.discard(m.partition())
        finally:
            await loop.run_in_executor(pool, consumer.close)
            pool.shutdown(wait=False)

    def _take(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        dead_before = len(self._dead)
        window = self.handle(partition, offset, key, value)
        if len(self._dead) > dead_before:
            self.on_change(None)
        if window is not None:
            log.info("incident %s revision %d %s", window.incident_id, window.revision, window.status.value)
            self.on_change(window)

    def _open(self, topic: str) -> Consumer:
        consumer = Consumer(self.settings.kafka_config(**{
            "group.id": self.settings.group(f"feed-{uuid.uuid4().hex}"), "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}))
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        return consumer

    def _ends(self, consumer: Consumer, topic: str) -> dict[int, int]:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(self.partitions)}
