"""Bad values for every input topic: random, truncated, bit-flipped, absurd, empty, oversized.

`fuzz(rng, codec, logical, pairs, n)` returns n (topic, key, value) records made from the
scenario's valid ones (`pairs`: key and plain Avro value). Keys are mostly the source record's
own (a producer that chose its key, then mangled its value), sometimes random bytes or none.
Nothing here decides what a record should become: the run admits each value exactly as a
worker does, so a bit flip that still validates is owed its remedies like any valid record.
"""
from __future__ import annotations

import random
from typing import Any

from streams.kafka.topics import ENTITLEMENTS, OUTAGES, REPORTS
from streams.wire.codec import Codec

SCHEMA = {OUTAGES: "outage_window", ENTITLEMENTS: "entitlement_state", REPORTS: "damage_report"}
KINDS = ("random", "truncated", "bit-flipped", "absurd", "empty", "oversized")
OVERSIZED_BYTES = 1_000_010      # the poison pill: just under the broker's ~1 MiB
OVERSIZED_PER_TOPIC = 2
YEAR_2300 = 10_413_792_000_000
CONTROL = "\x00\x07\x0f\x1b\x7f"

# Values a record may not hold, per topic: each makes the record invalid, not merely unusual.
ABSURD: dict[str, list[dict[str, Any]]] = {
    OUTAGES: [{"revision": -1}, {"services": []}, {"services": ["cyworld"]}, {"services": ["melon", "melon"]},
              {"started_at": YEAR_2300}, {"started_at": -5}, {"status": "CLOSED", "ended_at": None}, {"incident_id": ""},
              {"incident_id": "INC-" + "X" * 500}, {"incident_id": "INC-H\x0fLD-20221015"}, {"site": "s" * 5000}],
    ENTITLEMENTS: [{"price_krw": -4_900}, {"price_krw": 10**12}, {"period_days": 0}, {"period_days": -30},
                   {"valid_until": 0}, {"updated_at": YEAR_2300}, {"user_id": ""}, {"user_id": "u\x00"},
                   {"entitlement_id": "e" * 300}, {"service": "NETFLIX"}, {"service": "melon\x1b"}],
    REPORTS: [{"claimed_loss_krw": 10**15}, {"claimed_loss_krw": -1}, {"submitted_at": 0},
              {"occurred_at": YEAR_2300}, {"report_id": ""}, {"reporter_id": "u\x07"},
              {"incident_id": "inc-lower"}, {"business_id": "BRN\x1b"}, {"service": "daum\x00"},
              {"reporter_kind": "BUSINESS", "business_id": None}, {"body": "b" * 60_000}],
}


def _flip(rng: random.Random, value: bytes) -> bytes:
    out = bytearray(value)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _key(rng: random.Random, own: str, logical: str) -> bytes | None:
    r = rng.random()
    if r < 0.85:
        return own.encode()
    if r < 0.95 or logical == ENTITLEMENTS:     # a compacted topic refuses records without a key
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))
    return None


def fuzz(rng: random.Random, codec: Codec, logical: str, pairs: list[tuple[str, dict | None]],
         n: int) -> list[tuple[str, bytes | None, bytes]]:
    """n bad values for `logical`, kinds in turn (the oversized ones, 1 MB each, capped)."""
    schema = SCHEMA[logical]
    sources = [(k, v) for k, v in pairs if v is not None]
    out: list[tuple[str, bytes | None, bytes]] = []
    oversized = 0
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind == "oversized" and oversized >= OVERSIZED_PER_TOPIC:
            kind = "bit-flipped"
        own, plain = rng.choice(sources)
        valid = codec.encode(schema, plain)
        if kind == "random":
            value = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        elif kind == "truncated":
            value = valid[:rng.randrange(1, len(valid))]
        elif kind == "bit-flipped":
            value = _flip(rng, valid)
        elif kind == "absurd":
            value = codec.encode(schema, {**plain, **rng.choice(ABSURD[logical])})
        elif kind == "empty":
            value = b""
        else:
            oversized += 1
            value = valid + bytes(rng.getrandbits(8) for _ in range(16)) * ((OVERSIZED_BYTES - len(valid)) // 16)
        out.append((logical, _key(rng, own, logical), value))
    return out
