"""Produce errors on the real broker: a permanent one never stalls a worker.

Records the broker refuses as too large become dead letters and everything else still flows;
an output topic that does not exist stops the worker with one line and a non-zero status
(retrying forever would hold its partitions and look alive)."""
from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from processors.batch import evaluate
from processors.policy import load_policy
from streams.settings import ROOT
from tests.integration import kit
from tests.integration.conftest import read_topic


def _admin(settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.bootstrap})


def test_outputs_the_broker_refuses_as_too_large_become_dead_letters(settings, codec, workers):
    notices = settings.topic("remedy.notices.v1")
    res = ConfigResource(ResourceType.TOPIC, notices, incremental_configs=[
        ConfigEntry("max.message.bytes", "120", incremental_operation=AlterConfigOpType.SET)])
    admin = _admin(settings)
    admin.incremental_alter_configs([res])[res].result(30)
    workers.start(1)
    pub = kit.Published()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(200), pub)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    expected = evaluate(load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml")),
                        pub.windows, pub.entitlements, pub.reports)
    assert expected.notices and all(len(codec.encode_obj("user_notice", n)) > 120 for n in expected.notices)
    # every remedy still arrives: the refused notices held nothing else back
    got = kit.settle(settings, codec, len(expected.remedies), workers=workers)
    assert kit.as_rows(codec.decode_obj("remedy_action", m.value()) for m in got) == kit.as_rows(expected.remedies)
    # each input whose notice was refused has one dead letter that says why
    sources = {(n.source.topic, n.source.partition, n.source.offset) for n in expected.notices}
    letters = [codec.decode("dead_letter", m.value())
               for m in read_topic(settings, "remedy.deadletter.v1", expect=len(sources), timeout=60)]
    assert {(d["source_topic"], d["source_partition"], d["source_offset"]) for d in letters} == sources
    assert all(d["error_class"] == "PermanentProduceError" and "MSG_SIZE_TOO_LARGE" in d["error_message"]
               and d["stage"] == "PROCESS" for d in letters)
    assert read_topic(settings, "remedy.notices.v1", idle=1.0, timeout=5) == []
    assert all(workers.alive()), workers.logs()


def test_a_missing_output_topic_stops_the_worker_with_one_line(settings, codec, workers):
    # deleted under a running worker (a worker does not start with a topic missing at all:
    # tests/integration/ops/test_failures.py)
    workers.start(1)
    workers.wait_ready()
    admin = _admin(settings)
    for fut in admin.delete_topics([settings.topic("remedy.notices.v1")], operation_timeout=30).values():
        fut.result()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(50))
    kit.publish(settings, codec, "outage.windows.v1", kit.windows())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and workers.alive()[0]:
        time.sleep(0.5)
    assert not workers.alive()[0], "the worker kept running without its output topic\n" + workers.logs()
    assert workers.procs[0].returncode == 3
    logs = workers.logs()
    stops = [line for line in logs.splitlines() if "stopping:" in line]
    assert len(stops) == 1 and "makegood topics create" in stops[0], logs[-3000:]
    assert "Traceback" not in logs
