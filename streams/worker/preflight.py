"""Before a worker starts: what it needs, each failure said in one line.

- The policy must load (a malformed one names file, rule and field) -> exit.
- The Redis URL must be one (it is not connected to here: an unreachable Redis is an outage
  the worker waits out, not ready until it is back).
- Kafka must accept the worker's credentials and certificate (else exit with the setting to
  fix: waiting does not change a password).
- Kafka must answer. A worker started while the brokers are away waits for them with backoff
  rather than exiting: brokers restart (rolling upgrades, a node lost), and a worker that waits
  comes up by itself as soon as they are back, where one that exits is restarted by its
  supervisor into the same wait with a crash loop's noise and delays. It logs one WARNING, a
  reminder a minute, and serves /healthz (alive) and /readyz (not ready: Kafka) meanwhile.
- Every declared topic must exist: a missing one does not come back by waiting, so the worker
  exits with the command that fixes it (a worker once logged ~3,000 lines a second instead).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from confluent_kafka import KafkaException

from processors.policy import Policy, load_policy

from streams.errors import ConfigError, StartupError
from streams.kafka.access import admin_with_errors, explain
from streams.kafka.topics import load_topic_specs
from streams.ops.health import Health, Outage
from streams.settings import Settings

log = logging.getLogger(__name__)

FIRST_WAIT_S = 1.0
MAX_WAIT_S = 30.0
METADATA_TIMEOUT_S = 5.0
MISSING_SHOWN = 4


def load_worker_policy(settings: Settings) -> Policy:
    return load_policy(str(settings.policy_path))


def check_redis_url(settings: Settings) -> None:
    import redis.asyncio as aredis
    try:
        aredis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    except ValueError:
        raise ConfigError(f"MAKEGOOD_REDIS_URL {settings.redis_display!r} is not a Redis URL "
                          "(redis://, rediss:// or unix://)") from None


def wait_for_kafka(settings: Settings, health: Health, *, sleep: Callable[[float], None] = time.sleep,
                   give_up_after_s: float | None = None) -> set[str]:
    """The names of the cluster's topics, once a broker answers (waits with backoff until then)."""
    admin, errors = admin_with_errors(settings)
    outage = Outage(f"Kafka unreachable at {settings.bootstrap}", log)
    wait = FIRST_WAIT_S
    started = time.monotonic()
    while True:
        health.beat()
        try:
            topics = set(admin.list_topics(timeout=METADATA_TIMEOUT_S).topics)
            outage.ok(f"Kafka at {settings.bootstrap} reachable")
            health.set("kafka", True)
            return topics
        except KafkaException as exc:
            refused = explain(settings, admin, errors)
            if refused is not None:        # credentials or certificates: waiting will not fix them
                raise StartupError(str(refused)) from None
            err = exc.args[0] if exc.args else exc
            reason = err.str() if hasattr(err, "str") else str(err)
            health.set("kafka", False, f"Kafka unreachable at {settings.bootstrap}")
            outage.failed(reason, "waiting for it (check MAKEGOOD_BOOTSTRAP if this does not end); "
                                  "not ready meanwhile")
        if give_up_after_s is not None and time.monotonic() - started > give_up_after_s:
            raise StartupError(f"Kafka unreachable at {settings.bootstrap} for {give_up_after_s:.0f} s")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:       # beat while waiting: the process is alive
            health.beat()
            sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        wait = min(wait * 2, MAX_WAIT_S)


def check_topics(settings: Settings, existing: set[str]) -> None:
    declared = [settings.topic(name) for name in load_topic_specs(settings.topics_file)]
    missing = [t for t in declared if t not in existing]
    if missing:
        shown = ", ".join(missing[:MISSING_SHOWN]) + (f" and {len(missing) - MISSING_SHOWN} more"
                                                      if len(missing) > MISSING_SHOWN else "")
        raise StartupError(f"{len(missing)} of {len(declared)} topics missing on {settings.bootstrap} "
                           f"({shown}); run `makegood topics create` (with the same MAKEGOOD_NAMESPACE)")
