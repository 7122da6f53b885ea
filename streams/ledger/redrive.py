"""Which dead letters were re-driven, kept in Redis so a redrive never publishes one twice.

One hash, `<prefix>redriven`: field = the dead letter's id (`dl|topic|partition|offset` of the
source record, streams/decide/outputs.py), value = `pending <ms>` while its record is being
published, then `published <partition>:<offset> <ms>` (where the copy landed on the source
topic). Claiming is HSETNX, so two SREs redriving the same selection at once publish each record
once; a publish that fails releases its claim. A claim left `pending` by a process that died
mid-publish is reported as such and only redriven again with --force (it may or may not have
reached the broker; the workers' deterministic remedy ids make a second copy harmless).
"""
from __future__ import annotations

import time
from typing import Sequence

import redis

from streams.errors import LedgerError
from streams.settings import Settings


class RedriveLog:
    def __init__(self, settings: Settings):
        self.key = f"{settings.redis_prefix}redriven"
        self.address = settings.redis_address
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)

    def _fail(self, exc: Exception) -> LedgerError:
        return LedgerError(f"cannot reach Redis at {self.address}: {type(exc).__name__}")

    def states(self, ids: Sequence[str]) -> dict[str, str]:
        """The recorded state of each id that has one."""
        if not ids:
            return {}
        try:
            values = self.redis.hmget(self.key, list(ids))
        except redis.RedisError as exc:
            raise self._fail(exc) from None
        return {i: v.decode() for i, v in zip(ids, values) if v is not None}

    def claim(self, dl_id: str, *, force: bool = False) -> bool:
        """True if this process may publish `dl_id` now (nobody has, or `force`)."""
        value = f"pending {int(time.time() * 1000)}"
        try:
            if force:
                self.redis.hset(self.key, dl_id, value)
                return True
            return bool(self.redis.hsetnx(self.key, dl_id, value))
        except redis.RedisError as exc:
            raise self._fail(exc) from None

    def release(self, dl_id: str) -> None:
        try:
            self.redis.hdel(self.key, dl_id)
        except redis.RedisError as exc:
            raise self._fail(exc) from None

    def published(self, dl_id: str, partition: int, offset: int) -> None:
        try:
            self.redis.hset(self.key, dl_id, f"published {partition}:{offset} {int(time.time() * 1000)}")
        except redis.RedisError as exc:
            raise self._fail(exc) from None

    def close(self) -> None:
        self.redis.close()
