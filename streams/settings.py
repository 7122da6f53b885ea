"""One settings object, read from the environment in exactly one place (`Settings.from_env`)."""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"


def _rdkafka_logger() -> logging.Logger:
    log = logging.getLogger("makegood.rdkafka")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    return log


@dataclass(frozen=True)
class Settings:
    root: Path = ROOT
    bootstrap: str = DEFAULT_BOOTSTRAP
    redis_url: str = DEFAULT_REDIS_URL
    policy_path: Path = ROOT / "deploy" / "policies" / "kakao-1015.yaml"
    topics_file: Path = ROOT / "deploy" / "topics.yaml"
    schemas_dir: Path = ROOT / "schemas"
    # Prefix for every topic, consumer group and Redis key: tests and demos use a fresh one so
    # they never see each other's records.
    namespace: str = ""
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    state_dir: Path = ROOT / ".stack"
    # helper processes a worker decides its sweeps in (0: in the worker itself); sweeppool.py
    sweep_processes: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        env = dict(os.environ if env is None else env)
        s = cls()
        values: dict = {}
        if env.get("MAKEGOOD_BOOTSTRAP"):
            values["bootstrap"] = env["MAKEGOOD_BOOTSTRAP"]
        if env.get("MAKEGOOD_REDIS_URL"):
            values["redis_url"] = env["MAKEGOOD_REDIS_URL"]
        if env.get("MAKEGOOD_POLICY"):
            values["policy_path"] = Path(env["MAKEGOOD_POLICY"])
        if env.get("MAKEGOOD_NAMESPACE"):
            values["namespace"] = env["MAKEGOOD_NAMESPACE"]
        if env.get("MAKEGOOD_STATE_DIR"):
            values["state_dir"] = Path(env["MAKEGOOD_STATE_DIR"])
        if env.get("MAKEGOOD_SWEEP_PROCESSES"):
            values["sweep_processes"] = int(env["MAKEGOOD_SWEEP_PROCESSES"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(s, **values)

    @property
    def uses_local_kafka(self) -> bool:
        return self.bootstrap == DEFAULT_BOOTSTRAP

    @property
    def uses_local_redis(self) -> bool:
        return self.redis_url == DEFAULT_REDIS_URL

    def topic(self, name: str) -> str:
        """The real topic name of a logical one (`remedy.actions.v1`) under this namespace."""
        return f"{self.namespace}.{name}" if self.namespace else name

    @property
    def group_id(self) -> str:
        return self.topic("makegood.workers")

    def kafka_config(self, **extra: object) -> dict:
        """confluent-kafka client config. librdkafka's own log lines (e.g. retries while a cold
        broker elects its coordinators) go to the `makegood.rdkafka` logger, not to stderr."""
        return {"bootstrap.servers": self.bootstrap, "logger": _rdkafka_logger(), **extra}

    def producer_config(self, **extra: object) -> dict:
        """kafka_config for producers. murmur2 is the Java clients' (and Kafka's) partitioner, so
        a key lands on the same partition whichever tool writes it: workers, replays, publishers."""
        return self.kafka_config(**{"partitioner": "murmur2_random", **extra})

    @property
    def redis_prefix(self) -> str:
        return f"mg:{self.namespace}:" if self.namespace else "mg:"
