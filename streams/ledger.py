"""The Redis ledger: which output ids were issued, and each user's remedies.

Keys (under the settings' prefix, `mg:` by default):
- `ledger`            SET of every issued id (remedy, review, notice, dead letter).
- `user:<user_id>`    HASH remedy_id -> the remedy as JSON (for `makegood status` and
                      report triage: "the remedy already issued").
- `outcomes:<topic>`  HASH outcome -> count of input records that ended that way (recorded no-ops).

The ledger is written only after the broker acknowledged the records (see emitter.py), so an id
in the ledger is always on its topic. It can be rebuilt from `remedy.actions.v1` (`rebuild`).
"""
from __future__ import annotations

import json
from typing import Iterable, Mapping, Sequence

import redis
import redis.asyncio as aredis

from processors.model import RemedyAction, to_dict

from .settings import Settings


def remedy_summary(r: RemedyAction) -> str:
    return json.dumps(to_dict(r), separators=(",", ":"), sort_keys=True)


class Keys:
    def __init__(self, prefix: str):
        self.ledger = f"{prefix}ledger"
        self.user_prefix = f"{prefix}user:"
        self.outcomes_prefix = f"{prefix}outcomes:"

    def user(self, user_id: str) -> str:
        return self.user_prefix + user_id

    def outcomes(self, topic: str) -> str:
        return self.outcomes_prefix + topic

    def stage_record(self, pipe, ids: Iterable[str], remedies: Iterable[RemedyAction]):
        """Queue the ledger write of issued ids (and the users' remedy index) on a Redis pipeline."""
        ids = list(ids)
        if ids:
            pipe.sadd(self.ledger, *ids)
        for r in remedies:
            pipe.hset(self.user(r.user_id), r.remedy_id, remedy_summary(r))
        return pipe


class Ledger:
    """Async ledger used by workers."""

    def __init__(self, settings: Settings):
        self.keys = Keys(settings.redis_prefix)
        self.redis = aredis.Redis.from_url(settings.redis_url, socket_timeout=10,
                                           socket_connect_timeout=5, health_check_interval=15)

    async def close(self) -> None:
        await self.redis.aclose()

    async def issued(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        flags = await self.redis.smismember(self.keys.ledger, list(ids))
        return {i for i, f in zip(ids, flags) if f}

    async def record(self, ids: Iterable[str], remedies: Iterable[RemedyAction]) -> None:
        await self.keys.stage_record(self.redis.pipeline(transaction=True), ids, remedies).execute()

    async def user_remedies(self, user_id: str) -> list[dict]:
        raw = await self.redis.hgetall(self.keys.user(user_id))
        return [json.loads(v) for v in raw.values()]

    async def count_outcomes(self, topic: str, counts: Mapping[str, int]) -> None:
        if counts:
            pipe = self.redis.pipeline(transaction=False)
            for outcome, n in counts.items():
                pipe.hincrby(self.keys.outcomes(topic), outcome, n)
            await pipe.execute()


class SyncLedger:
    """Blocking ledger for the CLI: status, replay dry runs, rebuild."""

    def __init__(self, settings: Settings):
        self.keys = Keys(settings.redis_prefix)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)

    def issued(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(ids)
        for i in range(0, len(ids), 5000):
            chunk = ids[i:i + 5000]
            found.update(x for x, f in zip(chunk, self.redis.smismember(self.keys.ledger, chunk)) if f)
        return found

    def size(self) -> int:
        return int(self.redis.scard(self.keys.ledger))

    def user_remedies(self, user_id: str) -> list[dict]:
        raw = self.redis.hgetall(self.keys.user(user_id))
        return sorted((json.loads(v) for v in raw.values()), key=lambda r: (r["decided_at"], r["remedy_id"]))

    def outcomes(self, topic: str) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self.keys.outcomes(topic)).items()}

    def record(self, ids: Iterable[str], remedies: Iterable[RemedyAction]) -> None:
        self.keys.stage_record(self.redis.pipeline(transaction=True), ids, remedies).execute()
