"""The fault suite: real workers on a real broker and Redis, the reference scenario, a fault
injected while they work, then every output topic read committed and compared field by field
with the batch evaluator. Each run prints one line (`sigkill-1: 0 missing, 0 wrong, 0 duplicate
(7,012 records, 41.2 s)`) in the session summary.

Tests marked `faults` run with `make faults` (`pytest tests/faults --faults`); the others are
the quick subset that `make test` runs. Faults that kill the broker or Redis use private
servers on free ports (fixtures `kafka_server`, `redis_server`), never the shared ones.
"""
from __future__ import annotations

import uuid
from typing import Callable, Iterator

import pytest

from processors.policy import Policy, load_policy
from streams.kafka.topics import create_topics, delete_namespace
from streams.settings import ROOT, Settings
from tests.faults.run import FaultRun, Stack
from tests.integration.conftest import codec, kafka_server, redis_server, stack  # noqa: F401  fixtures
from tests.integration.conftest import delete_redis_keys

LINES: list[str] = []


def pytest_collection_modifyitems(config, items):
    everything = config.getoption("--faults")
    for item in items:
        if "/faults/" not in str(item.fspath):
            continue
        item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("faults") is not None and not everything:
            item.add_marker(pytest.mark.skip(reason="in the full fault suite: `make faults`"))


def pytest_terminal_summary(terminalreporter):
    if LINES:
        terminalreporter.section("fault runs")
        for line in LINES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml"))


@pytest.fixture
def fault_stack(stack, kafka_server, redis_server) -> Iterator[Callable[..., Stack]]:  # noqa: F811
    """`make(private_kafka=, private_redis=)`: a fresh namespace with its topics, on the shared
    broker and Redis or on private ones the test may kill."""
    made: list[Stack] = []

    def make(*, private_kafka: bool = False, private_redis: bool = False) -> Stack:
        broker = kafka_server() if private_kafka else None
        rs = redis_server() if private_redis else None
        if broker is not None:
            broker.up(lambda _m: None)
        if rs is not None:
            rs.up(lambda _m: None)
        s = Settings.from_env(namespace=f"f{uuid.uuid4().hex[:10]}", state_dir=stack.state_dir,
                              bootstrap=broker.settings.bootstrap if broker else stack.bootstrap,
                              redis_url=f"redis://127.0.0.1:{rs.port}/0" if rs else stack.redis_url)
        create_topics(s, say=lambda _m: None)
        made.append(Stack(s, broker, rs))
        return made[-1]

    yield make
    for st in made:          # private servers go with their fixtures
        if st.broker is None:
            delete_namespace(st.settings)
        if st.redis is None:
            delete_redis_keys(st.settings)


@pytest.fixture
def fault_run(fault_stack, codec, policy, tmp_path) -> Iterator[Callable[..., FaultRun]]:  # noqa: F811
    """`make(name, private_kafka=, private_redis=, seed=, scale=)`: a run on a fresh stack; its
    workers are stopped afterwards, whatever happened."""
    runs: list[FaultRun] = []

    def make(name: str, *, private_kafka: bool = False, private_redis: bool = False, **kw) -> FaultRun:
        logdir = tmp_path / name
        logdir.mkdir()
        runs.append(FaultRun(name, fault_stack(private_kafka=private_kafka, private_redis=private_redis),
                             codec, policy, logdir, LINES, **kw))
        return runs[-1]

    yield make
    for run in runs:
        run.close()
