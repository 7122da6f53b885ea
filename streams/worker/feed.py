"""Every worker's own view of every incident.

Outage windows are few, and every worker needs all of them to decide an entitlement on arrival
or to sweep its own partitions. Each worker reads the whole outage topic with a group-less
consumer from offset 0 and keeps the accepted revisions of each incident in memory (a
global table without a changelog: the topic keeps every revision). Nothing is committed: a
restart simply re-reads.

The same consumer reads the operators' approvals (makegood.approvals.v1), and the feed applies
the policy's approval limits (processors.approval): `raw` holds every accepted revision,
`histories` only the released prefix of each incident, which is all anything is decided against.
The cluster-wide cost of each revision arrives from the Redis estimates (worker.guard,
`set_total`). Whenever the released view changes, `on_change` is called as for a new revision.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from processors.approval import Cost, effective, holds, needs_estimate, report_incidents
from processors.model import DamageReport, OutageWindow, Source
from processors.windows import IncidentHistory

from streams.decide.admit import Admission, Rejection
from streams.decide.outputs import DeadLetter
from streams.errors import RegistryUnavailable
from streams.settings import Settings
from streams.kafka.topics import APPROVALS, OUTAGES
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
        self.raw: dict[str, IncidentHistory] = {}        # every accepted revision
        self.histories: dict[str, IncidentHistory] = {}  # the released prefixes (what is decided)
        self.held: set[str] = set()                      # incidents with a revision not released
        self.totals: dict[str, dict[int, Cost]] = {}     # cluster-wide cost per revision (Redis)
        self.approvals: dict[str, dict[int, Cost]] = {}  # approved revision -> the cost approved
        self.limits = admission.policy.approval
        self.read_up = asyncio.Event()        # every window and approval there was at start read
        self.caught_up = asyncio.Event()      # ... and the costs known in Redis applied (worker.guard)
        self._dead: list[DeadLetter] = []     # taken by the sweeper into the emitter
        self.ignored = 0

    def apply(self, window: OutageWindow) -> bool:
        """Accept a revision if it is newer than what this incident has; True when accepted."""
        history = self.raw.get(window.incident_id, IncidentHistory())
        accepted = history.accept(window)
        if accepted is None:
            self.ignored += 1
            return False
        self.raw[window.incident_id] = accepted
        self._regate(window.incident_id)
        return True

    def approve(self, incident_id: str, revision: int, cost: Cost) -> bool:
        """An approval read from the topic (the first of a revision counts); True when it
        changed what is released."""
        if revision in self.approvals.setdefault(incident_id, {}):
            return False
        self.approvals[incident_id][revision] = cost
        return incident_id in self.raw and self._regate(incident_id)

    def set_total(self, incident_id: str, revision: int, cost: Cost) -> bool:
        """The cluster-wide cost of a revision; True when it changed what is released."""
        self.totals.setdefault(incident_id, {})[revision] = cost
        return self._regate(incident_id)

    def _regate(self, incident_id: str) -> bool:
        raw = self.raw[incident_id]
        view = effective(raw, self.totals.get(incident_id, {}), self.approvals.get(incident_id, {}), self.limits)
        before = (self.histories.get(incident_id), incident_id in self.held)
        if view.revisions:
            self.histories[incident_id] = view
        else:
            self.histories.pop(incident_id, None)
        if view is raw:
            self.held.discard(incident_id)
        else:
            self.held.add(incident_id)
        return before != (self.histories.get(incident_id), incident_id in self.held)

    def pending(self) -> list:
        """The revisions not released (processors.approval.Hold), every incident."""
        return [h for i, raw in sorted(self.raw.items()) if i in self.held
                for h in holds(raw, self.totals.get(i, {}), self.approvals.get(i, {}), self.limits)]

    def unestimated(self) -> list[tuple[str, int]]:
        """(incident, revision) whose cost the gate needs and nobody has totalled yet."""
        return [(h.incident_id, h.revision) for h in self.pending()
                if h.cost is None and needs_estimate(self.raw[h.incident_id], h.revision)]

    def for_report(self, report: DamageReport) -> dict[str, IncidentHistory] | None:
        """The incidents a report is triaged against, or None while it must wait for a held one."""
        return report_incidents(self.raw, self.held, report)

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

    def handle_approval(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> bool:
        """Apply an approval record (or queue its dead letter); True when the released view changed."""
        got = self.admission.check("incident_approval", value, key)
        if isinstance(got, Rejection):
            self._dead.append(DeadLetter.of(Source(self.settings.topic(APPROVALS), partition, offset),
                                            key, value, got))
            return False
        log.info("incident %s revision %d approved by %s", got.incident_id, got.revision, got.approved_by)
        return self.approve(got.incident_id, got.revision, Cost(got.remedies, got.amount_krw))

    async def run(self) -> None:
        """Read the outage topic from its start, forever; `caught_up` is set once every record
        that was there when the worker started has been applied. librdkafka runs in a thread
        of its own (a consume() call blocks), the windows are applied on the event loop."""
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(1, thread_name_prefix="incident-feed")
        topic, approvals = self.settings.topic(OUTAGES), self.settings.topic(APPROVALS)
        consumer = await loop.run_in_executor(pool, self._open, topic, approvals)
        try:
            ends = await loop.run_in_executor(pool, self._ends, consumer, topic, approvals)
            pending = {tp for tp, end in ends.items() if end > 0}
            while True:
                if not pending and not self.read_up.is_set():
                    log.info("incident feed read up: %d incidents", len(self.raw))
                    self.read_up.set()
                msgs = await loop.run_in_executor(pool, consumer.consume, POLL_BATCH, POLL_S)
                if msgs and self.observer is not None:
                    self.observer.consumed(OUTAGES, len(msgs))
                for m in msgs:
                    if m.error() is not None:
                        continue
                    is_window = m.topic() == topic
                    while True:
                        try:
                            self._take(is_window, m.partition(), m.offset(), m.key(), m.value())
                            self.registry.resumed()
                            break
                        except RegistryUnavailable as exc:     # the window waits, nothing skips it
                            await self.registry.pause("the incident feed", exc)
                    if is_window:
                        self.positions[m.partition()] = m.offset() + 1
                    if m.offset() + 1 >= ends.get((m.topic(), m.partition()), 0):
                        pending.discard((m.topic(), m.partition()))
        finally:
            await loop.run_in_executor(pool, consumer.close)
            pool.shutdown(wait=False)

    def _take(self, is_window: bool, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        dead_before = len(self._dead)
        if is_window:
            before = dict(self.histories)
            window = self.handle(partition, offset, key, value)
            if window is not None:
                log.info("incident %s revision %d %s%s", window.incident_id, window.revision, window.status.value,
                         " (not released yet: being counted, or over the approval limits)" if window.incident_id in self.held else "")
            changed = window if window is not None and before != self.histories else None
        else:
            approved = self.handle_approval(partition, offset, key, value)
            changed = next((h.latest for h in self.histories.values()), None) if approved else None
        if len(self._dead) > dead_before:
            self.on_change(None)
        if changed is not None:
            self.on_change(changed)

    def _open(self, topic: str, approvals: str) -> Consumer:
        consumer = Consumer(self.settings.kafka_config(**{
            "group.id": self.settings.group(f"feed-{uuid.uuid4().hex}"), "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}))
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(self.partitions)]
                        + [TopicPartition(approvals, p, OFFSET_BEGINNING) for p in self._approval_partitions(
                            consumer, approvals)])
        return consumer

    @staticmethod
    def _approval_partitions(consumer: Consumer, approvals: str) -> list[int]:
        md = consumer.list_topics(approvals, timeout=30).topics.get(approvals)
        return sorted(md.partitions) if md is not None and md.error is None else []

    def _ends(self, consumer: Consumer, topic: str, approvals: str) -> dict[tuple[str, int], int]:
        return {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1]
                for tp in consumer.assignment()}
