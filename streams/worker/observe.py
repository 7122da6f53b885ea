"""The worker's instrumentation: what the collaborators tell, counted and (dead letters) logged.

The emitter, the state consumer and the sweeper each take an `Observer` (a fresh one by
default, so they work alone in tests) and call it once per batch, chunk or restore, never per
record on the hot path. Metrics go to ops.metrics.WorkerMetrics; each dead letter is logged
here at WARNING with where it came from and why, never its key or value (personal data).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Mapping, Sequence

from streams.kafka.topics import ACTIONS, DEADLETTER, DECISIONS, INPUT_TOPICS, RETRIAGE
from streams.ledger.store import Ledger
from streams.ops.logs import Budget
from streams.ops.metrics import WorkerMetrics

log = logging.getLogger(__name__)

DEAD_LETTER_LOG_LIMIT = 200      # WARNING lines per minute; the rest is summed up (metrics count all)
REASON_MAX = 300
ActionTally = Mapping[str, tuple[str, int]]   # remedy id -> (action, won), from a sweep process


class Observer:
    def __init__(self, metrics: WorkerMetrics | None = None, namespace: str = "") -> None:
        self.metrics = metrics or WorkerMetrics()
        self._prefix = f"{namespace}." if namespace else ""
        self._budget = Budget(DEAD_LETTER_LOG_LIMIT)
        self.restoring = False
        self.restore_partitions: list[int] = []
        self.restore_target = 0
        self.restore_read = 0

    def logical(self, topic: str) -> str:
        """The logical name of a real (namespaced) topic; a bounded label value."""
        if self._prefix and topic.startswith(self._prefix):
            topic = topic[len(self._prefix):]
        return topic if topic in INPUT_TOPICS or topic in (RETRIAGE, DECISIONS) else "other"

    # ------------------------------------------------------------------ intake

    def consumed(self, topic: str, n: int) -> None:
        self.metrics.count_consumed(topic, n)

    def consumed_batch(self, msgs: Sequence[Any]) -> None:
        """A group consumer's batch (librdkafka messages of real, namespaced topics)."""
        for topic, n in Counter(m.topic() for m in msgs).items():
            self.consumed(self.logical(topic), n)

    # ------------------------------------------------------------------ emitter

    def emitted(self, outputs: Sequence[tuple[str, str, str, Any]], outcome_topic: str | None,
                outcomes: Counter | None) -> None:
        """A batch's outputs that were new to the ledger, now acknowledged and ledgered
        (`decide.outputs.batch_outputs` tuples), and the batch's outcomes."""
        m = self.metrics
        per_topic: Counter = Counter()
        for oid, topic, _key, record in outputs:
            per_topic[topic] += 1
            if topic == ACTIONS:
                m.count_remedy(record.action.value, record.amount_krw or 0)
            elif topic == DEADLETTER:
                self._dead_letter(record)
        for topic, n in per_topic.items():
            m.count_output(topic, n)
        if outcome_topic and outcomes:
            m.count_decisions(outcome_topic, outcomes)

    def emitted_encoded(self, records: Sequence[tuple[str, str, bytes, bytes]], actions: ActionTally) -> None:
        """Outputs encoded in a sweep process, new to the ledger, now ledgered."""
        per_topic: Counter = Counter()
        for oid, topic, _key, _value in records:
            per_topic[topic] += 1
            if topic == ACTIONS and oid in actions:
                action, won = actions[oid]
                self.metrics.count_remedy(action, won)
        for topic, n in per_topic.items():
            self.metrics.count_output(topic, n)

    def _dead_letter(self, dl: Any) -> None:
        topic = self.logical(dl.source.topic)
        stage = str(dl.stage)
        self.metrics.count_dead_letter(topic, stage)
        ok, held = self._budget.allow()
        if held:
            log.warning("%d more dead letters in the last minute were not logged one by one "
                        "(makegood_dead_letters_total counts them all)", held)
        if ok:
            reason = dl.error_message if len(dl.error_message) <= REASON_MAX else dl.error_message[:REASON_MAX] + "…"
            log.warning("dead letter: %s partition %d offset %d, stage %s: %s: %s",
                        topic, dl.source.partition, dl.source.offset, stage, dl.error_class, reason)

    def transaction(self, produce_s: float, commit_s: float) -> None:
        """One committed transaction: how long its records took to be acknowledged, and how
        long sending its offsets and committing took."""
        self.metrics.produce_seconds.observe(produce_s)
        self.metrics.commit_seconds.observe(commit_s)

    # ------------------------------------------------------------------ group consumers

    def restore_started(self, partitions: list[int], records: int) -> None:
        """Called from the consumer's thread when an assignment starts (before any restore)."""
        self.restoring = True
        self.restore_partitions = partitions
        self.restore_target, self.restore_read = records, 0
        self.metrics.restoring.set(1)
        self.metrics.restore_target.set(records)
        self.metrics.restore_read.set(0)
        if records:
            log.info("restoring entitlement partitions %s: %d records to read back from the topic; "
                     "not ready until done", partitions, records)

    def restore_progress(self, read: int) -> None:
        self.restore_read += read
        self.metrics.restore_read.inc(read)

    def restore_finished(self) -> None:
        self.restoring = False
        self.metrics.restoring.set(0)

    # ------------------------------------------------------------------ sweeper

    def sweep_started(self, entitlements: int) -> float:
        self.metrics.sweep_running.set(1)
        self.metrics.sweep_size.set(entitlements)
        self.metrics.sweep_done.set(0)
        return time.monotonic()

    def sweep_progress(self, decided: int) -> None:
        self.metrics.sweep_done.inc(decided)
        self.metrics.sweep_entitlements.inc(decided)

    def sweep_finished(self, started: float, completed: bool) -> None:
        self.metrics.sweep_running.set(0)
        if completed:
            self.metrics.sweep_seconds.observe(time.monotonic() - started)

    def reconciled(self, ids: int) -> None:
        if ids:
            self.metrics.reconciled.inc(ids)


class TimedLedger(Ledger):
    """The Redis ledger with each call's latency in makegood_ledger_seconds{op}."""

    def __init__(self, settings: Any, metrics: WorkerMetrics) -> None:
        super().__init__(settings)
        self._seconds = metrics.ledger_seconds

    async def issued(self, ids):  # type: ignore[override]
        with self._seconds.labels("check").time():
            return await super().issued(ids)

    async def record(self, ids, entries, worker_id=None, outcomes=None):  # type: ignore[override]
        with self._seconds.labels("write").time():
            return await super().record(ids, entries, worker_id, outcomes)

    async def mark_inflight(self, worker_id, now_ms):  # type: ignore[override]
        with self._seconds.labels("inflight_mark").time():
            return await super().mark_inflight(worker_id, now_ms)

    async def users_remedies(self, user_ids):  # type: ignore[override]
        with self._seconds.labels("read").time():
            return await super().users_remedies(user_ids)

    async def user_remedies(self, user_id):  # type: ignore[override]
        with self._seconds.labels("read").time():
            return await super().user_remedies(user_id)
