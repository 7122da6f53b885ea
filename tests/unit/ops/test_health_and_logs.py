"""Liveness, readiness, outage lines, library noise and the dead-letter budget, on a fake clock."""
from __future__ import annotations

import json
import logging

from streams.ops.health import Health, Outage
from streams.ops.logs import Budget, JsonFormatter, LibraryNoise


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_alive_while_the_loop_beats_and_ready_only_when_every_condition_is_met():
    clock = Clock()
    h = Health(["kafka", "redis"], stall_s=30, clock=clock)
    assert h.alive() == (True, "alive")
    assert h.ready() == (False, ["kafka: starting", "redis: starting"])
    h.set("kafka", True)
    h.set("redis", False, "Redis ledger unreachable at 10.0.0.5:6379")
    assert h.ready() == (False, ["redis: Redis ledger unreachable at 10.0.0.5:6379"])
    h.set("redis", True)
    assert h.ready() == (True, [])
    clock.t += 31                                   # the loop stopped beating
    alive, why = h.alive()
    assert not alive and "31 s" in why
    assert h.ready()[0] is False
    h.beat()
    assert h.ready() == (True, [])


def test_an_outage_is_one_warning_a_reminder_a_minute_and_one_info(caplog):
    clock = Clock()
    changes = []
    o = Outage("Redis ledger unreachable at 10.0.0.5:6379", logging.getLogger("t"), clock=clock,
               on_change=changes.append)
    with caplog.at_level(logging.INFO, logger="t"):
        o.ok("back")                                 # nothing to say while up
        for _ in range(100):                         # a probe every 0.5 s for 50 s
            o.failed("ConnectionError: refused")
            clock.t += 0.5
        clock.t += 20                                # past a minute: one reminder
        o.failed("ConnectionError: refused")
        o.failed("ConnectionError: refused")
        o.ok("Redis ledger at 10.0.0.5:6379 reachable again")
        o.ok("Redis ledger at 10.0.0.5:6379 reachable again")
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [lvl for lvl, _ in records] == ["WARNING", "WARNING", "INFO"], records
    assert "for 70 s now" in records[1][1]
    assert records[2][1] == "Redis ledger at 10.0.0.5:6379 reachable again after 70 s"
    assert changes == [False, True] and o.up and o.outages == 1


def _record(name: str, msg: str, *args, level=logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_library_errors_are_rate_limited_per_template_and_silent_while_kafka_is_down():
    clock = Clock()
    noise = LibraryNoise(window_s=60, clock=clock)
    passed = [noise.filter(_record("redis.connection", "Unable connect to node with id %s: %s", i, "refused"))
              for i in range(2900)]
    assert passed.count(True) == 1
    assert noise.filter(_record("redis.connection", "Unable to update metadata from %s", [1]))   # another template
    assert noise.filter(_record("streams.worker.app", "ours are never filtered"))
    clock.t += 61
    again = _record("redis.connection", "Unable connect to node with id %s: %s", 1, "refused")
    assert noise.filter(again) and "2899 more like this" in again.getMessage()
    noise.kafka_down = True
    assert not noise.filter(_record("redis.cluster", "Topic %s not found in cluster metadata", "x"))
    assert not noise.filter(_record("asyncio", "anything", level=logging.WARNING))
    assert noise.dropped == 2


def test_json_lines_carry_level_logger_message_and_worker():
    fmt = JsonFormatter("worker-7")
    doc = json.loads(fmt.format(_record("streams.worker.watch", "ready (%.1f s after start)", 2.25,
                                        level=logging.INFO)))
    assert doc["level"] == "INFO" and doc["logger"] == "streams.worker.watch"
    assert doc["message"] == "ready (2.2 s after start)" and doc["worker"] == "worker-7"
    assert doc["time"].endswith("Z")


def test_the_budget_lets_a_limit_through_per_window_and_counts_the_rest():
    clock = Clock()
    b = Budget(3, 60, clock=clock)
    assert [b.allow() for _ in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
    clock.t += 60
    assert b.allow() == (True, 2)
