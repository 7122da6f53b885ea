"""Faults on a real broker and Redis, two workers, the reference scenario; each run asserts 0
missing, 0 wrong and 0 duplicate records read committed (see conftest.py and run.py)."""
from __future__ import annotations

import random
import time

import pytest
import redis as redis_lib

from streams.kafka.topics import ENTITLEMENTS, INPUT_TOPICS, OUTAGES, REPORTS
from tests.faults.fuzz import fuzz
from tests.faults.run import FaultRun

PAUSE_S = 20        # SIGSTOP this long: past both session timeouts (10 s: consumer.py, app.py)


def _entitlements_then_close(run: FaultRun) -> None:
    run.start()
    run.opened()
    run.consumed()
    run.closed()


def _sigkills(run: FaultRun) -> None:
    run.start()
    run.opened()
    run.sigkill(within=2)
    run.consumed()
    run.closed()
    run.sigkill(within=2)
    run.settle(run.expected(), quiet=0)
    run.reported()
    run.sigkill(within=2)
    run.finish()


def test_sigkill_at_random_points(fault_run):
    """Quick subset: three SIGKILLs of a random worker at random moments (intake, sweep,
    report triage), each replaced at once."""
    _sigkills(fault_run("sigkill-1", seed=1))


@pytest.mark.faults
@pytest.mark.parametrize("n", [2, 3])
def test_sigkill_at_random_points_again(fault_run, n):
    _sigkills(fault_run(f"sigkill-{n}", seed=n))


@pytest.mark.faults
@pytest.mark.parametrize("n", [1, 2, 3])
def test_sigstop_past_the_session_timeout_then_sigcont(fault_run, n):
    """A worker paused mid-sweep and again mid-triage, each time long enough for the group to
    give its partitions away, then resumed with the batch it had in hand (fenced: its
    transactions are refused, nothing of them is read committed)."""
    run = fault_run(f"sigstop-{n}", seed=n, scale=2.0)
    _entitlements_then_close(run)
    out = run.mid_sweep()
    run.pause(PAUSE_S)
    assert out < len(run.expected().remedies), "the fault did not land mid-sweep"
    run.settle(run.expected(), quiet=0)
    run.reported()
    time.sleep(run.rng.uniform(0, 1))
    run.pause(PAUSE_S)
    run.finish(quiet=10)


@pytest.mark.faults
def test_broker_killed_and_restarted_mid_sweep(fault_run):
    run = fault_run("broker-restart", private_kafka=True, scale=2.0)
    _entitlements_then_close(run)
    out = run.mid_sweep()
    run.kill_broker(down_s=5)
    assert out < len(run.expected().remedies), "the fault did not land mid-sweep"
    run.settle(run.expected(), quiet=0)
    run.reported()
    run.finish()


@pytest.mark.faults
def test_redis_killed_and_restarted_mid_sweep(fault_run):
    """Redis (AOF, fsync every second) killed with SIGKILL while the workers ledger a sweep."""
    run = fault_run("redis-restart", private_redis=True, scale=2.0)
    _entitlements_then_close(run)
    out = run.mid_sweep()
    run.kill_redis(down_s=3)
    assert out < len(run.expected().remedies), "the fault did not land mid-sweep"
    run.settle(run.expected(), quiet=0)
    run.reported()
    run.finish()


@pytest.mark.faults
def test_redis_emptied_then_ledger_rebuild_then_a_full_replay_issues_nothing(fault_run):
    run = fault_run("redis-rebuild", private_redis=True)
    _entitlements_then_close(run)
    run.settle(run.expected(), quiet=0)
    run.reported()
    before = run.settle()
    assert before.clean, before.line(run.name, 0)
    run.workers.stop()
    redis_lib.Redis(port=run.stack.redis.port).flushall()
    run.note("Redis emptied (FLUSHALL)")
    run.cli("ledger", "rebuild")
    for topic in INPUT_TOPICS:
        out = run.cli("replay", topic, "--from", "0", "--yes", "--quiet")
        assert out.startswith("published 0 records"), out
    run.restart(2)          # workers that start re-read every window and sweep what they own
    after = run.finish(quiet=10)
    assert after.records == before.records


@pytest.mark.faults
def test_fuzz_every_input_topic(fault_run):
    """Random, truncated, bit-flipped, absurd, empty and oversized values on every input topic,
    among the scenario's records: each rejected value is one dead letter, each value that
    still validates is decided like any record, and no mangled window makes an incident."""
    run = fault_run("fuzz")
    rng = random.Random(1011)
    n = 150
    run.start()
    run.opened()
    run.raw(fuzz(rng, run.codec, ENTITLEMENTS, run.scenario.entitlements, n))
    run.consumed()
    run.closed()
    run.raw(fuzz(rng, run.codec, OUTAGES, run.scenario.windows, n))
    run.settle(run.expected(), quiet=0)
    run.reported()
    run.raw(fuzz(rng, run.codec, REPORTS, run.scenario.reports, n))
    run.finish()
    assert {r.incident_id for r in run.expected().remedies} == {run.scenario.windows[0][1]["incident_id"]}
