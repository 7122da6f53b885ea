"""Bad input on the real broker (issue #11 parts 5 and 6): bad outage windows seen by every
worker become exactly one dead letter each."""
from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from confluent_kafka import Producer

from tests.integration import kit
from tests.integration.conftest import read_topic


@pytest.fixture
def workers(settings, tmp_path):
    w = kit.Workers(settings, tmp_path)
    yield w
    w.stop()


def _raw(settings, logical, items) -> None:
    """Produce (key, value) pairs as they are, values of up to about 1 MiB included."""
    p = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True,
                  "message.max.bytes": 1_100_000})
    failed = []
    for key, value in items:
        p.produce(settings.topic(logical), key=key, value=value, on_delivery=lambda err, _m: err and failed.append(err))
        p.poll(0)
    assert p.flush(60) == 0 and not failed, failed


def _dead_letters(settings, codec, expect: int) -> list[dict]:
    """Every dead letter, waiting a while past `expect` for any that should not be there."""
    return [codec.decode("dead_letter", m.value())
            for m in read_topic(settings, "remedy.deadletter.v1", expect=expect, idle=5, timeout=90)]


def test_a_bad_window_is_dead_lettered_once_per_cluster(settings, codec, workers):
    """Every worker reads every outage window and finds the same bad ones; the cluster
    publishes one dead letter for each (the issue counted 702 for 500, one per worker)."""
    workers.start(2)
    workers.wait_ready()
    w = kit.windows()[1]
    valid = codec.encode_obj("outage_window", w)
    bad = []
    for i in range(150):
        kind = i % 3
        value = (b"\x00not a window %d" % i if kind == 0 else valid[: 10 + i % (len(valid) - 12)] if kind == 1
                 else codec.encode_obj("outage_window", dataclasses.replace(w, incident_id=f"INC-{i}\x0fX")))
        bad.append((f"INC-BAD-{i}".encode(), value))
    _raw(settings, "outage.windows.v1", bad)
    dead = _dead_letters(settings, codec, len(bad))
    per_record = Counter(d["source_offset"] for d in dead)
    assert len(dead) == len(bad) and len(per_record) == len(bad), \
        f"{len(dead)} dead letters for {len(bad)} bad windows: {sum(n - 1 for n in per_record.values())} duplicates"
    assert all(workers.alive())
