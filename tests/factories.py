"""Builders for test records: every field has a sensible default, override by keyword."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from processors.model import (
    BillingChannel,
    DamageReport,
    EntitlementKind,
    EntitlementState,
    EntitlementStatus,
    IncidentStatus,
    OutageWindow,
    ReportCategory,
    ReporterKind,
    Source,
)
from processors.policy import Policy, load_policy

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "deploy" / "policies" / "kakao-1015.yaml"
HOUR = 3_600_000
DAY = 24 * HOUR
KST = dt.timezone(dt.timedelta(hours=9))


def ms(text: str) -> int:
    """Epoch ms of an ISO-8601 instant with offset (test-side convenience only)."""
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


# The Pangyo fire: 2022-10-15 15:30 KST, 127 hours of outage.
START = ms("2022-10-15T15:30:00+09:00")
END = START + 127 * HOUR
INCIDENT = "INC-20221015-PANGYO"
ALL_SERVICES = ("kakaotalk", "emoticon-plus", "melon", "kakaopage", "kakaowebtoon",
                "kakaotv", "gift", "shopping", "daum")


def reference() -> Policy:
    return load_policy(str(REFERENCE))


def src(offset: int = 0, topic: str = "test.topic", partition: int = 0) -> Source:
    return Source(topic, partition, offset)


def window(**kw: Any) -> OutageWindow:
    status = kw.pop("status", IncidentStatus.CLOSED)
    base: dict[str, Any] = dict(
        incident_id=INCIDENT,
        revision=1,
        status=status,
        services=ALL_SERVICES,
        started_at=START,
        ended_at=None if status is IncidentStatus.OPEN else END,
        site="SK C&C Pangyo",
        published_at=END + HOUR,
    )
    base.update(kw)
    return OutageWindow(**base)


def ent(**kw: Any) -> EntitlementState:
    base: dict[str, Any] = dict(
        entitlement_id="ENT-1",
        user_id="U-1",
        service="emoticon-plus",
        kind=EntitlementKind.SUBSCRIPTION,
        billing_channel=BillingChannel.WEB,
        status=EntitlementStatus.ACTIVE,
        valid_from=START - 10 * DAY,
        valid_until=START + 20 * DAY,
        price_krw=4_900,
        period_days=30,
        updated_at=START - 10 * DAY,
        locale="en",   # the tests read English; None is a record from before #16 (the policy's: ko)
    )
    base.update(kw)
    return EntitlementState(**base)


BODY = "my shop lost orders all weekend, call me secret-body-7731"
EMAIL = "owner-7731@example.com"
PHONE = "010-7731-0000"


def report(**kw: Any) -> DamageReport:
    base: dict[str, Any] = dict(
        report_id="R-1",
        reporter_id="U-1",
        reporter_kind=ReporterKind.INDIVIDUAL,
        business_id=None,
        service="kakaotalk",
        incident_id=INCIDENT,
        category=ReportCategory.FREE_SERVICE,
        claimed_loss_krw=None,
        occurred_at=START + HOUR,
        title="outage harm secret-title-7731",
        body=BODY,
        contact_email=EMAIL,
        contact_phone=PHONE,
        submitted_at=END + 2 * DAY,
        locale="en",
    )
    base.update(kw)
    return DamageReport(**base)


def business(**kw: Any) -> DamageReport:
    kw.setdefault("reporter_kind", ReporterKind.BUSINESS)
    kw.setdefault("business_id", "123-45-67890")
    kw.setdefault("category", ReportCategory.BUSINESS_LOSS)
    kw.setdefault("claimed_loss_krw", 100_000)
    return report(**kw)
