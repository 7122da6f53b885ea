"""A worker's /metrics and /readyz against what really happened on the broker and in Redis."""
from __future__ import annotations

import dataclasses
import time
from collections import Counter

import redis as redis_lib
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.ledger.store import Keys
from tests.integration import kit
from tests.integration.conftest import read_topic
from tests.integration.ops.scrape import by, readyz, samples

PERSONAL = ("secret-body", "@example.com")


def _wait(what, check, timeout=120, every=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: still {last!r}")


def test_counters_equal_what_was_consumed_issued_and_dead_lettered(settings, codec, workers):
    workers.start(1)
    port = workers.port(0)
    workers.wait_ready()
    good = kit.entitlements(400, seed=13)
    poison_ents = [dataclasses.replace(good[0], entitlement_id="bad-1", price_krw=-5),
                   dataclasses.replace(good[1], entitlement_id="bad-2", service="cyworld")]
    kit.publish(settings, codec, "entitlement.states.v1", good + poison_ents,
                raw=[(b"bad-3", b"not avro at all")])
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), raw=[(b"INC-X", b"\x00garbage")])
    reports = kit.reports(80, seed=17)
    kit.publish(settings, codec, "damage.reports.v1", reports, raw=[(b"u1", b"{\"report_id\": \"json\"}")])
    n_ent, n_win, n_rep = len(good) + 3, 3 + 1, len(reports) + 1

    r = redis_lib.Redis.from_url(settings.redis_url)
    keys = Keys(settings.redis_prefix)

    def outcomes_done():
        ent = sum(int(v) for v in r.hgetall(keys.outcomes("entitlement.states.v1")).values())
        rep = sum(int(v) for v in r.hgetall(keys.outcomes("damage.reports.v1")).values())
        return ent >= n_ent and rep >= n_rep, (ent, rep)
    _wait("outcome counters", outcomes_done)

    def on_topic(logical, schema):
        return [codec.decode(schema, m.value()) for m in read_topic(settings, logical, idle=2, timeout=60)]

    def settled():
        s = samples(port)
        lag = by(s, "makegood_consumer_lag_records", "topic", "partition")
        published = by(s, "makegood_outputs_published_total", "topic")
        actions = on_topic("remedy.actions.v1", "remedy_action")
        ok = (lag and not any(lag.values())
              and published.get("remedy.actions.v1", 0) == len(actions) > 0)
        return ok, (lag, published, len(actions))
    _wait("lag 0 and every remedy counted", settled, timeout=180, every=2)

    s = samples(port)
    consumed = by(s, "makegood_records_consumed_total", "topic")
    assert consumed["entitlement.states.v1"] == n_ent
    assert consumed["outage.windows.v1"] == n_win
    assert consumed["damage.reports.v1"] == n_rep

    actions = on_topic("remedy.actions.v1", "remedy_action")
    assert by(s, "makegood_remedies_issued_total", "action") == dict(Counter(a["action"] for a in actions))
    won = Counter()
    for a in actions:
        won[a["action"]] += a["amount_krw"] or 0
    assert by(s, "makegood_remedies_issued_won_total", "action") == {k: v for k, v in won.items() if v}

    letters = on_topic("remedy.deadletter.v1", "dead_letter")
    assert len(letters) == 5
    expected_dead = Counter((d["source_topic"].split(".", 1)[1], d["stage"]) for d in letters)
    assert by(s, "makegood_dead_letters_total", "topic", "stage") == dict(expected_dead)

    published = by(s, "makegood_outputs_published_total", "topic")
    for logical, schema in (("remedy.reviews.v1", "review_case"), ("remedy.notices.v1", "user_notice")):
        assert published.get(logical, 0) == len(on_topic(logical, schema)), logical
    assert published["remedy.deadletter.v1"] == len(letters)

    # decisions by outcome are the ledger's outcome counters, record for record
    decisions = by(s, "makegood_decisions_total", "topic", "outcome")
    for logical in ("entitlement.states.v1", "damage.reports.v1"):
        ledger = {k.decode(): int(v) for k, v in r.hgetall(keys.outcomes(logical)).items()}
        assert {o: v for (t, o), v in decisions.items() if t == logical} == ledger, logical
    assert s[("makegood_store_entitlements", ())] == len(good)
    assert s[("makegood_ready", ())] == 1 and readyz(port) == (True, [])
    assert s[("makegood_dependency_up", (("dependency", "kafka"),))] == 1
    assert s[("makegood_dependency_up", (("dependency", "redis"),))] == 1
    assert s[("makegood_sweep_duration_seconds_count", ())] >= 1
    assert s[("makegood_ledger_seconds_count", (("op", "write"),))] >= 1
    assert s[("makegood_produce_seconds_count", ())] >= 1
    assert s[("makegood_commit_seconds_count", ())] >= 1

    # each dead letter: one WARNING with where and why, never its key or value
    log = workers.log(0)
    lines = [line for line in log.splitlines() if "dead letter:" in line]
    assert len(lines) == 5 and all("[WARNING]" in line and " offset " in line and "stage " in line
                                   for line in lines), lines
    assert not any(k in line for line in lines for k in ("bad-1", "bad-3", "INC-X", "not avro at all"))
    assert not any(p in log for p in PERSONAL)
    assert not any(p in text for p in PERSONAL for text in [str(s)])
    assert "Traceback" not in log
    assert sum("starting: makegood" in line for line in log.splitlines()) == 1


def _states(codec, n: int) -> list[tuple[bytes, bytes]]:
    """`n` small valid entitlement states, distinct ids (about 15 s of encoding per million)."""
    base = dataclasses.asdict(kit.entitlements(1)[0])
    base.update(kind=base["kind"].name, billing_channel=base["billing_channel"].name, status=base["status"].name)
    return [(f"s{i:07d}".encode(), codec.encode("entitlement_state", dict(base, entitlement_id=f"s{i:07d}")))
            for i in range(n)]


def test_readyz_is_false_while_restoring_and_true_after(settings, codec, workers):
    n = 300_000
    topic = settings.topic("entitlement.states.v1")
    p = Producer({"bootstrap.servers": settings.bootstrap, "linger.ms": 50, "batch.size": 1 << 20,
                  "queue.buffering.max.messages": 1_000_000, "compression.type": "lz4",
                  "partitioner": "murmur2_random"})
    for key, value in _states(codec, n):
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0
    # the group processed all of it before (as a worker that was replaced would have): a new
    # worker restores every state from the topic up to the committed offsets
    c = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": settings.topic("makegood.entitlements"),
                  "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    ends = [TopicPartition(topic, q, c.get_watermark_offsets(TopicPartition(topic, q), timeout=10)[1])
            for q in parts]
    assert sum(tp.offset for tp in ends) == n
    c.commit(offsets=ends, asynchronous=False)
    c.close()

    workers.start(1)
    port = workers.port(0)
    seen_restoring: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, reasons = readyz(port)
        if ready:
            break
        seen_restoring += [r for r in reasons if "restoring entitlement partitions" in r]
        time.sleep(0.1)
    else:
        raise AssertionError("never ready\n" + workers.logs())
    assert seen_restoring, "/readyz never said it was restoring\n" + workers.logs()
    s = samples(port)
    assert s[("makegood_store_entitlements", ())] == n
    assert s[("makegood_restore_records_read", ())] == n
    assert s[("makegood_restore_in_progress", ())] == 0
    assert "; 300000 records read" in workers.log(0) and "restored from offset 0 to" in workers.log(0)
