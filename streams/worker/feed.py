"""Every worker's own view of every incident.

Outage windows are few, and every worker needs all of them to decide an entitlement on arrival
or to sweep its own partitions. Rather than a faust GlobalTable (whose recovery has open bugs),
each worker reads the whole outage topic with a group-less consumer from offset 0 and keeps the
accepted revisions of each incident in memory. Nothing is committed: a restart simply re-reads.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.model import OutageWindow, Source
from processors.windows import IncidentHistory

from streams.decide.admit import Admission, Rejection
from streams.decide.outputs import DeadLetter
from streams.settings import Settings
from streams.kafka.topics import OUTAGES

log = logging.getLogger(__name__)


class IncidentFeed:
    def __init__(self, settings: Settings, admission: Admission,
                 on_change: Callable[[OutageWindow | None], None], partitions: int):
        self.settings = settings
        self.partitions = partitions     # declared in deploy/topics.yaml
        self.admission = admission
        self.on_change = on_change
        self.histories: dict[str, IncidentHistory] = {}
        self.caught_up = asyncio.Event()
        self._dead: list[DeadLetter] = []     # taken by the sweeper into the emitter
        self.ignored = 0
        self._consumer: AIOKafkaConsumer | None = None

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
        topic = self.settings.topic(OUTAGES)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        self._consumer = consumer
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            if not pending:
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for tp, msgs in batches.items():
                    for m in msgs:
                        dead_before = len(self._dead)
                        window = self.handle(tp.partition, m.offset, m.key, m.value)
                        if len(self._dead) > dead_before:
                            self.on_change(None)
                        if window is not None:
                            log.info("incident %s revision %d %s", window.incident_id, window.revision,
                                     window.status.value)
                            self.on_change(window)
                if not self.caught_up.is_set():
                    for tp in list(pending):
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
                    if not pending:
                        log.info("incident feed caught up: %d incidents", len(self.histories))
                        self.caught_up.set()
        finally:
            await consumer.stop()
