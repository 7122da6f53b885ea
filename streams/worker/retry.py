"""Waiting out the broker and Redis: a worker never turns an outage into lost records.

`retry_forever` retries an I/O step with capped exponential backoff for as long as its failure
is temporary. It logs the first failure, a reminder a minute while it lasts, and one line when
the step goes through: an outage of Redis or Kafka is a few lines, not one every 5 s (the
outage itself, and readiness, come from the worker's probes: worker.watch). A failure that
retrying cannot mend is raised at once: `PermanentProduceError` (too large, not authorised, no
such topic), so the caller can dead-letter the records or stop the worker with one clear line
instead of stalling a partition forever, and `GroupFenced` (the group gave this worker's
partitions to another), so the batch is dropped, not redone.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, TypeVar

import redis.exceptions

from streams.errors import GroupFenced, PermanentProduceError, RetriableProduceError

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0
REMIND_S = 60.0
REGISTRY_MAX_DELAY_S = 30.0
# Failures that mean "Redis or Kafka is away": the worker's probes already log the outage (one
# WARNING when it starts), so the steps waiting for it say so at INFO.
OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, RetriableProduceError,
                 ConnectionError, TimeoutError)


async def retry_forever(what: str, op: Callable[[], Awaitable[T]]) -> T:
    """`op()`, retried until it succeeds; permanent produce errors are raised, not retried."""
    delay = FIRST_DELAY_S
    first: float | None = None
    reminded = 0.0
    attempts = 0
    while True:
        try:
            result = await op()
            if first is not None:
                log.info("%s went through after %d attempts in %.0f s", what, attempts + 1,
                         time.monotonic() - first)
            return result
        except (asyncio.CancelledError, PermanentProduceError, GroupFenced):
            raise
        except Exception as exc:  # noqa: BLE001 - any other I/O failure is waited out
            attempts += 1
            now = time.monotonic()
            level = logging.INFO if isinstance(exc, OUTAGE_ERRORS) else logging.WARNING
            if first is None:
                first = reminded = now
                log.log(level, "%s failed (%s: %s); retrying with backoff (up to %.0f s apart) until it "
                        "goes through", what, type(exc).__name__, str(exc)[:200], MAX_DELAY_S)
            elif now - reminded >= REMIND_S:
                reminded = now
                log.log(level, "%s still failing after %d attempts in %.0f s (%s: %s)", what, attempts,
                            now - first, type(exc).__name__, str(exc)[:200])
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)


class RegistryWait:
    """Work that needs the schema registry to resolve a schema id waits here, on the event loop's
    terms (never by sleeping on it), while the registry does not answer: one WARNING when the
    wait starts, a reminder a minute, one INFO when it ends. `waiting` feeds readiness."""

    def __init__(self) -> None:
        self.waiting: str | None = None
        self._since = 0.0
        self._reminded = 0.0
        self._delay = FIRST_DELAY_S

    async def pause(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if self.waiting is None:
            self._since = self._reminded = now
            self._delay = FIRST_DELAY_S
            log.warning("%s waits for the schema registry (%s); retrying with backoff", what, str(exc)[:200])
        elif now - self._reminded >= REMIND_S:
            self._reminded = now
            log.warning("%s still waiting for the schema registry after %.0f s", what, now - self._since)
        self.waiting = f"schema registry unavailable: {what} waits ({str(exc)[:120]})"
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, REGISTRY_MAX_DELAY_S)

    def resumed(self) -> None:
        if self.waiting is not None:
            log.info("schema registry answers again after %.0f s", time.monotonic() - self._since)
            self.waiting = None
