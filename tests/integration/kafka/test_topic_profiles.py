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
