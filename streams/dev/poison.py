"""The scenario's poison records: about ten values that must end as dead letters, each for a
different reason (not Avro, truncated, unknown service, JSON, negative price, absurd loss, year
2300, a window that ends before it starts, an unknown schema fingerprint, the wrong record type)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from streams.kafka.topics import ENTITLEMENTS as ENT, OUTAGES as WIN, REPORTS as REP
from streams.wire.codec import Codec

HOUR = 3_600_000
Pair = tuple[str, dict | None]


def malformed(codec: Codec, windows: list[Pair], ents: list[Pair], reps: list[Pair]) -> list[tuple[str, bytes, bytes]]:
    """About ten records that must end as dead letters, each for a different reason."""
    ent = dict(ents[0][1] or {}, entitlement_id="ent-poison-1")
    rep = dict(reps[0][1] or {}, report_id="rpt-poison-1", reporter_id="u-poison")
    win = windows[-1][1] or {}
    enc = codec.encode
    year_2300 = int(datetime(2300, 1, 1, tzinfo=timezone.utc).timestamp()) * 1000
    valid_ent = enc("entitlement_state", ent)
    return [
        (REP, b"u-poison", b"\x00\xff this is not Avro at all"),
        (ENT, b"ent-poison-1", valid_ent[: len(valid_ent) // 2]),                       # truncated
        (ENT, b"ent-poison-2", enc("entitlement_state", dict(ent, entitlement_id="ent-poison-2",
                                                             service="cyworld"))),      # unknown service
        (REP, b"u-poison", json.dumps({"report_id": "rpt-json", "category": "PAID_SERVICE",
                                       "claimed_loss_krw": 10_000}).encode()),          # a JSON blob
        (ENT, b"ent-poison-3", enc("entitlement_state", dict(ent, entitlement_id="ent-poison-3",
                                                             price_krw=-4_900))),       # negative price
        (REP, b"u-poison", enc("damage_report", dict(
            rep, report_id="rpt-poison-2", reporter_kind="BUSINESS", business_id="000-00-00000",
            category="BUSINESS_LOSS", claimed_loss_krw=10**15))),                       # absurd loss
        (ENT, b"ent-poison-4", enc("entitlement_state", dict(ent, entitlement_id="ent-poison-4",
                                                             valid_until=year_2300))),  # year 2300
        (WIN, b"INC-20221016-BOGUS", enc("outage_window", dict(
            win, incident_id="INC-20221016-BOGUS", revision=1,
            ended_at=win["started_at"] - HOUR))),                                       # ends before it starts
        (WIN, b"INC-20221015-PANGYO", b"\xc3\x01" + bytes(8) + b"\x02"),                  # unknown fingerprint
        (ENT, b"u-poison", enc("damage_report", dict(rep, report_id="rpt-poison-3"))),    # wrong record type
    ]
