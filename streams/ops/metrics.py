"""The worker's Prometheus metrics, in one registry per worker (no module-level state).

Why prometheus_client served from a thread (ops/http.py), not a web server on the event loop:
a sweep holds the loop for a while, and /healthz must still answer (and say whether the loop
is stuck) while it does.

Conventions: every name starts with `makegood_`, counters end in `_total`, durations are in
seconds, and label values come from small fixed sets (logical topic names, outcomes, actions,
stages, partitions, dependencies): never a user, entitlement or report id.
"""
from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SWEEP_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)


class WorkerMetrics:
    """Every metric a worker exports; `totals` keeps plain running sums for the progress log
    line, so the log never has to read prometheus_client's internals."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.totals: Tally = Tally()
        self.info = Info("makegood_worker", "The worker: version, policy version, namespace, worker id.",
                         registry=r)
        self.consumed = Counter("makegood_records_consumed_total", "Input records consumed, by topic.",
                                ["topic"], registry=r)
        self.decisions = Counter("makegood_decisions_total",
                                 "Input records decided, by input topic and outcome (the ledger's outcome "
                                 "counters; dead letters count as dead-letter:<stage>).",
                                 ["topic", "outcome"], registry=r)
        self.outputs = Counter("makegood_outputs_published_total",
                               "Records published (acknowledged and ledgered), by output topic.",
                               ["topic"], registry=r)
        self.remedies = Counter("makegood_remedies_issued_total", "Remedy actions issued, by action.",
                                ["action"], registry=r)
        self.won = Counter("makegood_remedies_issued_won_total",
                           "Won (KRW) carried by the remedy actions issued, by action (REVERSAL counted "
                           "under its own action, as a positive amount).", ["action"], registry=r)
        self.dead_letters = Counter("makegood_dead_letters_total",
                                    "Dead letters published, by source topic and stage.",
                                    ["topic", "stage"], registry=r)
        self.lag = Gauge("makegood_consumer_lag_records",
                         "Records not yet processed (committed offsets, or the incident feed's position) "
                         "per input partition this worker holds.", ["topic", "partition"], registry=r)
        self.owned = Gauge("makegood_owned_partitions", "Input partitions this worker holds, by topic.",
                           ["topic"], registry=r)
        self.sweep_seconds = Histogram("makegood_sweep_duration_seconds",
                                       "Time of each completed sweep of the owned entitlements.",
                                       buckets=SWEEP_BUCKETS, registry=r)
        self.sweep_running = Gauge("makegood_sweep_in_progress", "1 while a sweep runs.", registry=r)
        self.sweep_size = Gauge("makegood_sweep_entitlements",
                                "Entitlements in the sweep in progress (or the last one).", registry=r)
        self.sweep_done = Gauge("makegood_sweep_decided_entitlements",
                                "Entitlements decided so far by the sweep in progress (or the last one).",
                                registry=r)
        self.sweep_entitlements = Counter("makegood_sweep_entitlements_decided_total",
                                          "Stored entitlements re-decided by sweeps.", registry=r)
        self.store_size = Gauge("makegood_store_entitlements",
                                "Entitlement states held in memory (owned partitions).", registry=r)
        self.restoring = Gauge("makegood_restore_in_progress",
                               "1 while assigned entitlement partitions are read back from the topic.",
                               registry=r)
        self.restore_target = Gauge("makegood_restore_records",
                                    "Records the restore in progress (or the last one) has to read.", registry=r)
        self.restore_read = Gauge("makegood_restore_records_read",
                                  "Records the restore in progress (or the last one) has read.", registry=r)
        self.ledger_seconds = Histogram("makegood_ledger_seconds", "Redis ledger calls, by operation.",
                                        ["op"], buckets=LATENCY_BUCKETS, registry=r)
        self.produce_seconds = Histogram("makegood_produce_seconds",
                                         "Producing one transaction's records until every one is acknowledged.",
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.commit_seconds = Histogram("makegood_commit_seconds",
                                        "Sending a transaction's input offsets and committing it.",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.inflight_marks = Gauge("makegood_inflight_marks",
                                    "In-flight marks in the ledger (workers with records produced but not "
                                    "yet ledgered; one that stays names a worker that died).", registry=r)
        self.reconciled = Counter("makegood_inflight_reconciled_ids_total",
                                  "Output ids ledgered by in-flight reconciliation after a take-over.", registry=r)
        self.ledger_ids = Gauge("makegood_ledger_ids", "Ids in the Redis ledger (all workers).", registry=r)
        self.ready = Gauge("makegood_ready", "1 when /readyz answers ready.", registry=r)
        self.up = Gauge("makegood_dependency_up", "1 when the dependency answered the last probe.",
                        ["dependency"], registry=r)
        self.outages = Counter("makegood_dependency_outages_total",
                               "Outages seen (a probe failing after it succeeded), by dependency.",
                               ["dependency"], registry=r)
        self.loop_lag = Gauge("makegood_event_loop_lag_seconds",
                              "How late the event loop's last heartbeat ran (a blocked loop shows here "
                              "before /healthz fails).", registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ counting

    def count_consumed(self, topic: str, n: int) -> None:
        if n:
            self.consumed.labels(topic).inc(n)
            self.totals["consumed"] += n
            self.totals[f"consumed:{topic}"] += n

    def count_decisions(self, topic: str, outcomes: Tally) -> None:
        for outcome, n in outcomes.items():
            self.decisions.labels(topic, str(outcome)).inc(n)
            self.totals["decided"] += n

    def count_output(self, topic: str, n: int = 1) -> None:
        self.outputs.labels(topic).inc(n)
        self.totals["emitted"] += n
        self.totals[f"emitted:{topic}"] += n

    def count_remedy(self, action: str, won: int) -> None:
        self.remedies.labels(action).inc()
        if won:
            self.won.labels(action).inc(won)

    def count_dead_letter(self, topic: str, stage: str) -> None:
        self.dead_letters.labels(topic, stage).inc()
        self.totals["dead"] += 1

    def set_lag(self, lags: dict[tuple[str, int], int]) -> None:
        """The lag of exactly these partitions: partitions no longer held disappear."""
        current = {(t, str(p)) for t, p in lags}
        for labels in list(getattr(self, "_lag_labels", set()) - current):
            self.lag.remove(*labels)
        for (topic, partition), value in lags.items():
            self.lag.labels(topic, str(partition)).set(value)
        self._lag_labels = current
        self.totals["lag"] = sum(lags.values())
