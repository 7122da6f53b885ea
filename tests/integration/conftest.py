"""Fixtures for tests against the real local Kafka broker and Redis server.

Every test gets its own namespace: uuid-named topics, consumer groups and Redis keys, so tests
never read each other's records and need no cleanup between runs. The stack itself is brought up
by `make test` (and by the `stack` fixture if it is not up yet); an unreachable broker fails the
run loudly rather than skipping.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pytest
import redis as redis_lib
from confluent_kafka import Consumer, Producer, TopicPartition

from processors.policy import Policy, load_policy

import streams.dev.stack as devstack
from streams.wire.codec import Codec
from streams.wire.framing import open_codec
from streams.settings import ROOT, Settings
from streams.kafka.topics import create_topics, delete_namespace

if TYPE_CHECKING:
    from tests.integration.kit import Workers

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Settings:
    base = Settings.from_env()
    devstack.stack_up(base, say=lambda _msg: None)
    return base


@pytest.fixture(scope="session")
def codec(stack: Settings) -> Codec:
    # the stack's framing: registry ids (registered under the un-namespaced subjects, the same
    # ids as every namespace's, since the registry gives the same schema text the same id)
    return open_codec(stack)


@pytest.fixture
def settings(stack: Settings) -> Iterator[Settings]:
    """Settings under a fresh namespace whose topics exist."""
    ns = f"t{uuid.uuid4().hex[:10]}"
    s = Settings.from_env(namespace=ns, state_dir=stack.state_dir)
    create_topics(s, say=lambda _msg: None)
    yield s
    delete_namespace(s)
    delete_redis_keys(s)


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator["Workers"]:
    """Worker processes on this test's namespace, stopped after the test."""
    from tests.integration.kit import Workers     # kit imports this module: not at import time
    w = Workers(settings, tmp_path)
    yield w
    w.stop()


@pytest.fixture(scope="module")
def policy() -> Policy:
    """The reference policy, as the workers load it by default."""
    return load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml"))


def delete_redis_keys(s: Settings) -> None:
    """Delete every Redis key under a (test) namespace."""
    r = redis_lib.Redis.from_url(s.redis_url, **s.redis_kwargs())
    keys = list(r.scan_iter(f"{s.redis_prefix}*", count=1000))
    if keys:
        r.delete(*keys)


@pytest.fixture
def producer(stack: Settings) -> Iterator[Producer]:
    p = Producer({"bootstrap.servers": stack.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    yield p
    p.flush(10)


def read_topic(settings: Settings, logical: str, *, expect: int | None = None,
               timeout: float = 30.0, idle: float = 2.0) -> list:
    """Every committed record of a namespaced topic from the beginning (read as billing reads it,
    `isolation.level=read_committed`): stops at `expect` records, or after
    `idle` seconds with nothing new once at least `expect` (or anything) has arrived, or at timeout."""
    import time
    c = Consumer(settings.kafka_config(**{
        "group.id": settings.topic(f"billing.reader-{uuid.uuid4().hex}"), "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "isolation.level": "read_committed"}))     # what billing sees
    name = settings.topic(logical)
    md = c.list_topics(name, timeout=10).topics[name]
    c.assign([TopicPartition(name, p, 0) for p in md.partitions])
    out, deadline, last = [], time.monotonic() + timeout, time.monotonic()
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                if (expect is None or len(out) >= expect) and time.monotonic() - last > idle:
                    break
                continue
            if m.error():
                continue
            out.append(m)
            last = time.monotonic()
            if expect is not None and len(out) >= expect and idle == 0:
                break
    finally:
        c.close()
    return out


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path: Path) -> Callable[[], devstack.RedisServer]:
    """A private redis-server (AOF on) on a free port, for tests that restart Redis."""
    servers = []

    def make() -> devstack.RedisServer:
        port = free_port()
        srv = devstack.RedisServer(tmp_path / f"redis-{port}", port, tied=True)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.down(lambda _m: None)


@pytest.fixture
def kafka_server(stack: Settings, tmp_path: Path) -> Callable[[], devstack.LocalKafka]:
    """A private single-node KRaft broker on free ports under the test's tmp dir, for tests
    that kill and restart the broker (never the shared one). `make()` returns it stopped: call
    `up`; its `settings.bootstrap` is its address."""
    brokers = []

    def make() -> devstack.LocalKafka:
        port, controller = free_port(), free_port()
        s = Settings.from_env(bootstrap=f"127.0.0.1:{port}", state_dir=stack.state_dir)
        broker = devstack.LocalKafka(s, port=port, controller_port=controller,
                                     home=tmp_path / f"kafka-{port}", tied=True)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.kill()      # a throwaway broker: no controlled shutdown to wait for
