"""The cluster-wide cost of incident revisions, for the approval gate (processors.approval).

Each worker counts what a revision would issue to the entitlements of the partitions it owns and
writes one field per partition; once every partition of entitlement.states.v1 has a count, the
first reader to see them all sums them and freezes the total (SET NX): the one cost every worker,
`makegood incident pending` and the approval see, however partitions moved in between.

Keys (under the settings' prefix, next to the ledger's):
- `estimate:<incident>:<revision>`        HASH partition -> that partition's cost (JSON)
- `estimate-total:<incident>:<revision>`  STRING the frozen total (JSON), never rewritten
"""
from __future__ import annotations

import json
from typing import Iterable, Mapping

from processors.approval import Cost

from streams.ledger.store import Ledger


class Estimates:
    def __init__(self, ledger: Ledger, prefix: str, partitions: int):
        self.redis = ledger.redis
        self.prefix = prefix
        self.partitions = partitions     # of entitlement.states.v1, as declared

    def _parts(self, incident_id: str, revision: int) -> str:
        return f"{self.prefix}estimate:{incident_id}:{revision}"

    def _total(self, incident_id: str, revision: int) -> str:
        return f"{self.prefix}estimate-total:{incident_id}:{revision}"

    async def put(self, incident_id: str, revision: int, parts: Mapping[int, Cost]) -> None:
        """This worker's counts of the partitions it owns (a later count of a partition replaces
        an earlier one until the total is frozen)."""
        if parts:
            await self.redis.hset(self._parts(incident_id, revision),
                                  mapping={str(p): json.dumps(c.to_plain()) for p, c in parts.items()})

    async def counted(self, incident_id: str, revision: int) -> set[int]:
        return {int(p) for p in await self.redis.hkeys(self._parts(incident_id, revision))}

    async def total(self, incident_id: str, revision: int) -> Cost | None:
        """The frozen total, freezing it when every partition has been counted; None until then."""
        raw = await self.redis.get(self._total(incident_id, revision))
        if raw is None:
            parts = await self.redis.hgetall(self._parts(incident_id, revision))
            if {int(p) for p in parts} < set(range(self.partitions)):
                return None
            total = Cost()
            for value in parts.values():
                total = total.plus(Cost.from_plain(json.loads(value)))
            await self.redis.set(self._total(incident_id, revision), json.dumps(total.to_plain()), nx=True)
            raw = await self.redis.get(self._total(incident_id, revision))
        return Cost.from_plain(json.loads(raw))

    async def totals(self, pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Cost]:
        out = {}
        for incident_id, revision in pairs:
            cost = await self.total(incident_id, revision)
            if cost is not None:
                out[(incident_id, revision)] = cost
        return out
