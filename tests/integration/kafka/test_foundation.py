"""The ground floor against the real broker and Redis: topics, the wire format, persistence."""
from __future__ import annotations

import pytest
import redis as redis_lib

from streams.kafka.topics import TOPIC_SCHEMAS, load_topic_specs, describe_topic
from tests.integration.conftest import read_topic
from tests.samples import sample


def test_topics_exist_with_declared_configs(settings):
    specs = load_topic_specs(settings.topics_file)
    assert "makegood.retriage.v1" in specs and set(TOPIC_SCHEMAS) <= set(specs)
    for name, spec in specs.items():
        partitions, config = describe_topic(settings, name)
        assert partitions == spec.partitions, name
        for key, value in spec.config.items():
            assert config[key] == value, (name, key)
    assert describe_topic(settings, "entitlement.states.v1")[1]["cleanup.policy"] == "compact"


@pytest.mark.parametrize("name", sorted(set(TOPIC_SCHEMAS.values())))
def test_every_schema_round_trips_through_a_real_topic(settings, codec, producer, name):
    topic = next(t for t, s in TOPIC_SCHEMAS.items() if s == name)
    producer.produce(settings.topic(topic), key=b"k-1", value=codec.encode(name, sample(name)))
    producer.flush(10)
    [msg] = read_topic(settings, topic, expect=1, idle=0)
    assert msg.key() == b"k-1"
    assert codec.decode(name, msg.value()) == sample(name)


def test_create_topics_is_idempotent(settings):
    from streams.kafka.topics import create_topics
    said = []
    create_topics(settings, say=said.append)
    assert said == [f"topics: {len(load_topic_specs(settings.topics_file))} already present"]


def test_redis_key_survives_a_restart(redis_server):
    srv = redis_server()
    srv.up(lambda _m: None)
    r = redis_lib.Redis(host="127.0.0.1", port=srv.port)
    r.sadd("mg:ledger", "remedy-1")
    srv.down(lambda _m: None)
    assert not srv.answers()
    srv.up(lambda _m: None)
    assert redis_lib.Redis(host="127.0.0.1", port=srv.port).sismember("mg:ledger", "remedy-1")
