"""The Redis ledger: which output ids were issued, and each user's remedies.

Keys (under the settings' prefix, `mg:` by default):
- `ledger`            SET of every issued id (remedy, review, notice, dead letter).
- `user:<user_id>`    HASH remedy_id -> the remedy exactly as published on remedy.actions.v1
                      (Avro single-object bytes), for `makegood status` and report triage
                      ("the remedy already issued"). The worker has those bytes in hand, so
                      indexing costs no second encoding.
- `outcomes:<topic>`  HASH outcome -> count of input records that ended that way (recorded no-ops).
- `inflight`          HASH worker_id -> epoch ms: set before a worker produces, cleared with the
                      ledger write. A worker that died in between leaves its entry; whoever takes
                      over reads the output topics from that time and ledgers what is already
                      there (catchup.reconcile_inflight), so those records are not produced twice.
- `claim:<id>`        STRING worker_id, with an expiry: the worker that publishes an output every
                      worker finds (the dead letter of a bad outage window: each worker reads
                      every window). Claimed before the ledger check, so one worker publishes it.

The ledger is written only after the broker acknowledged the records (see emitter.py), so an id
in the ledger is always on its topic. It can be rebuilt from `remedy.actions.v1` (`rebuild`).
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Iterable, Mapping, Sequence, TypeVar

import redis.asyncio as aredis

from streams.settings import Settings


T = TypeVar("T")
ISSUED_CHUNK = 5000
RemedyEntry = tuple[str, str, bytes]    # (user_id, remedy_id, the remedy_action record's value)


class Keys:
    def __init__(self, prefix: str):
        self.ledger = f"{prefix}ledger"
        self.user_prefix = f"{prefix}user:"
        self.outcomes_prefix = f"{prefix}outcomes:"
        self.inflight = f"{prefix}inflight"
        self.claim_prefix = f"{prefix}claim:"

    def claim(self, output_id: str) -> str:
        return self.claim_prefix + output_id

    def user(self, user_id: str) -> str:
        return self.user_prefix + user_id

    def outcomes(self, topic: str) -> str:
        return self.outcomes_prefix + topic


class Ledger:
    """The ledger, on asyncio: what workers use, and what SyncLedger runs for blocking code."""

    def __init__(self, settings: Settings):
        self.keys = Keys(settings.redis_prefix)
        self.redis = aredis.Redis.from_url(settings.redis_url, **settings.redis_kwargs(), socket_timeout=10,
                                           socket_connect_timeout=5, health_check_interval=15)

    async def close(self) -> None:
        await self.redis.aclose()

    async def issued(self, ids: Sequence[str]) -> set[str]:
        """The ids among `ids` already issued (asked in chunks: one reply per chunk)."""
        ids = list(ids)
        found: set[str] = set()
        for i in range(0, len(ids), ISSUED_CHUNK):
            chunk = ids[i:i + ISSUED_CHUNK]
            flags = await self.redis.smismember(self.keys.ledger, chunk)
            found.update(x for x, f in zip(chunk, flags) if f)
        return found

    async def size(self) -> int:
        return int(await self.redis.scard(self.keys.ledger))

    async def record(self, ids: Iterable[str], entries: Iterable[RemedyEntry],
                     worker_id: str | None = None, outcomes: tuple[str, Mapping[str, int]] | None = None) -> int:
        """Ledger ids and index remedies (and clear the worker's in-flight mark, and count a
        batch's outcomes) in one transaction: one round trip per batch. Returns how many of the
        ids were new to the ledger."""
        ids = list(ids)
        pipe = self.redis.pipeline(transaction=True)
        if worker_id is not None:
            pipe.hdel(self.keys.inflight, worker_id)
        if ids:
            pipe.sadd(self.keys.ledger, *ids)
        per_user: dict[str, dict[str, bytes]] = {}
        for user_id, remedy_id, value in entries:
            per_user.setdefault(user_id, {})[remedy_id] = value
        for user_id, fields in per_user.items():
            pipe.hset(self.keys.user(user_id), mapping=fields)
        if outcomes is not None:
            self._stage_outcomes(pipe, *outcomes)
        replies = await pipe.execute()
        return int(replies[1 if worker_id is not None else 0]) if ids else 0

    async def claim(self, ids: Sequence[str], worker_id: str, ttl_ms: int) -> set[str]:
        """Claim output ids for this worker (SET NX with an expiry) and return the ids it holds:
        those it claimed now and those it already held. An id claimed by another worker is
        theirs until their claim expires (they may die before publishing it)."""
        ids = list(ids)
        if not ids:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for oid in ids:
            pipe.set(self.keys.claim(oid), worker_id, nx=True, px=ttl_ms)
        won = await pipe.execute()
        held = {oid for oid, ok in zip(ids, won) if ok}
        others = [oid for oid, ok in zip(ids, won) if not ok]
        if others:
            holders = await self.redis.mget([self.keys.claim(oid) for oid in others])
            held.update(oid for oid, h in zip(others, holders) if h == worker_id.encode())
        return held

    async def mark_inflight(self, worker_id: str, now_ms: int) -> None:
        """Before producing: keep the earliest time this worker has records not yet ledgered."""
        await self.redis.hsetnx(self.keys.inflight, worker_id, now_ms)

    async def inflight(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in (await self.redis.hgetall(self.keys.inflight)).items()}

    async def forget_inflight(self, entries: dict[str, int]) -> None:
        """Drop in-flight marks that are still exactly as read (a live worker re-marks anew)."""
        for worker_id, ts in entries.items():
            await self.redis.eval(
                "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
                "return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0",
                1, self.keys.inflight, worker_id, str(ts))

    async def user_remedies(self, user_id: str) -> list[bytes]:
        """The user's remedies, as remedy_action record values."""
        return list((await self.redis.hgetall(self.keys.user(user_id))).values())

    async def users_remedies(self, user_ids: Sequence[str]) -> dict[str, list[bytes]]:
        pipe = self.redis.pipeline(transaction=False)
        for u in user_ids:
            pipe.hgetall(self.keys.user(u))
        rows = await pipe.execute()
        return {u: list(raw.values()) for u, raw in zip(user_ids, rows)}

    async def outcomes(self, topic: str) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in (await self.redis.hgetall(self.keys.outcomes(topic))).items()}

    def _stage_outcomes(self, pipe, topic: str, counts: Mapping[str, int]) -> None:
        for outcome, n in counts.items():
            pipe.hincrby(self.keys.outcomes(topic), outcome, n)

    async def count_outcomes(self, topic: str, counts: Mapping[str, int]) -> None:
        if counts:
            pipe = self.redis.pipeline(transaction=False)
            self._stage_outcomes(pipe, topic, counts)
            await pipe.execute()


class SyncLedger:
    """The same ledger for blocking code (commands, the replay, the rebuild, the demo): every
    call runs the async Ledger's method on a private event loop, so there is one implementation
    of every ledger operation."""

    def __init__(self, settings: Settings):
        self._loop = asyncio.new_event_loop()
        self._ledger = Ledger(settings)
        self.keys = self._ledger.keys

    def _run(self, coro: Awaitable[T]) -> T:
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._ledger.close())
            self._loop.close()

    def issued(self, ids: Sequence[str]) -> set[str]:
        return self._run(self._ledger.issued(ids))

    def size(self) -> int:
        return self._run(self._ledger.size())

    def user_remedies(self, user_id: str) -> list[bytes]:
        """The user's remedies, as remedy_action record values."""
        return self._run(self._ledger.user_remedies(user_id))

    def outcomes(self, topic: str) -> dict[str, int]:
        return self._run(self._ledger.outcomes(topic))

    def record(self, ids: Iterable[str], entries: Iterable[RemedyEntry]) -> int:
        """Ledger ids and index remedies; returns how many ids were new."""
        return self._run(self._ledger.record(ids, entries))
