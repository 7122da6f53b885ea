"""One decision at a time per worker, with the sweep's last emit allowed to run behind it.

Entitlement batches, report batches, assignments and sweep chunks all change what the worker
has decided and ledgered, so they take turns (`exclusive`). A sweep is the exception that
keeps it fast: it lets go of the lock while its last chunk's emit is still waiting on the
broker and Redis (`run_behind`) and decides the next chunk meanwhile. Whoever takes the lock
through `exclusive` first waits for that emit (`settle`), so every earlier decision of the
worker is ledgered when its turn starts.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Awaitable


class Gate:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self._behind: asyncio.Future | None = None

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """The lock, with every earlier decision of this worker ledgered."""
        async with self.lock:
            await self.settle()
            yield

    async def settle(self) -> int:
        """Wait for the emit left running behind, if any; returns how many records it produced."""
        pending, self._behind = self._behind, None
        return await pending if pending is not None else 0

    def run_behind(self, emit: Awaitable[int]) -> None:
        """Leave `emit` running after the lock is released (call `settle` first: one at a time)."""
        assert self._behind is None, "settle() the previous emit first"
        self._behind = asyncio.ensure_future(emit)

    async def drain(self, timeout: float) -> None:
        """On shutdown: give the emit left behind time to be ledgered."""
        if self._behind is not None:
            await asyncio.wait([self._behind], timeout=timeout)
