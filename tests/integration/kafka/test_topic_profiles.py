"""Topic durability as the broker has it: the profile's replication and min.insync.replicas,
and no expiry on any topic the ledger rebuild reads (README: "never expire")."""
from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from streams.errors import TopicError
from streams.kafka.topics import admin_client, create_topics, describe_topic, load_topic_specs
from streams.ledger.rebuild import OUTPUT_TOPICS


def test_the_local_profile_and_the_rebuild_topics_retention_read_back_from_the_broker(settings):
    admin = admin_client(settings)
    for name in load_topic_specs(settings.topics_file, "local"):
        _, config = describe_topic(settings, name)
        md = admin.list_topics(settings.topic(name), timeout=10).topics[settings.topic(name)]
        assert {len(p.replicas) for p in md.partitions.values()} == {1}, name
        assert config["min.insync.replicas"] == "1", name
    for name in OUTPUT_TOPICS:
        assert describe_topic(settings, name)[1]["retention.ms"] == "-1", name


def test_the_production_profile_asks_the_broker_for_three_replicas(stack):
    """The one-broker local cluster cannot hold 3 replicas: the broker refuses, which shows
    the profile's replication factor is what `topics create` asks for."""
    s = replace(stack, namespace=f"p{uuid.uuid4().hex[:10]}", topic_profile="production")
    with pytest.raises(TopicError, match="INVALID_REPLICATION_FACTOR|[Rr]eplication factor"):
        create_topics(s, say=lambda _m: None)
    assert not [t for t in admin_client(s).list_topics(timeout=10).topics if t.startswith(s.namespace + ".")]


def test_topics_create_sets_a_declared_config_an_existing_topic_differs_in(settings):
    """A cluster created when notices kept 30 days converges on the declared retention."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    admin = admin_client(settings)
    name = settings.topic("remedy.notices.v1")
    old = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "2592000000", incremental_operation=AlterConfigOpType.SET)])
    for fut in admin.incremental_alter_configs([old]).values():
        fut.result()
    _until(lambda: describe_topic(settings, "remedy.notices.v1")[1]["retention.ms"] == "2592000000")
    said: list[str] = []
    create_topics(settings, say=said.append)
    assert f"topics: {name}: retention.ms 2592000000 -> -1" in said
    _until(lambda: describe_topic(settings, "remedy.notices.v1")[1]["retention.ms"] == "-1")


def _until(check, timeout: float = 15.0) -> None:
    """A config change is applied asynchronously by the broker."""
    import time
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the broker did not apply the config in time"
        time.sleep(0.2)
