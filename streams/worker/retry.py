"""Waiting out the broker and Redis: a worker never turns an outage into lost records.

`retry_forever` retries an I/O step with capped exponential backoff for as long as its failure
is temporary. A failure that retrying cannot mend is raised at once: `PermanentProduceError`
(too large, not authorised, no such topic), so the caller can dead-letter the records or stop
the worker with one clear line instead of stalling a partition forever, and `GroupFenced`
(the group gave this worker's partitions to another), so the batch is dropped, not redone.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, TypeVar

from streams.errors import GroupFenced, PermanentProduceError

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0


async def retry_forever(what: str, op: Callable[[], Awaitable[T]]) -> T:
    """`op()`, retried until it succeeds; permanent produce errors are raised, not retried."""
    delay = FIRST_DELAY_S
    while True:
        try:
            return await op()
        except (asyncio.CancelledError, PermanentProduceError, GroupFenced):
            raise
        except Exception as exc:  # noqa: BLE001 - any other I/O failure is waited out
            log.warning("%s failed (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
