"""Semantic validation of decoded input records (DESIGN §4.4).

A record that fails here is not processed: the caller dead-letters it with the
reason, and processing continues.
"""

from __future__ import annotations

from processors.errors import InvalidRecord
from processors.model import (
    DamageReport,
    EntitlementState,
    IncidentStatus,
    OutageWindow,
    ReporterKind,
)
from processors.policy import Policy

MIN_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, inclusive
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z, exclusive
MAX_PRICE_KRW = 100_000_000
MAX_CLAIM_KRW = 10**13


def _id(value: object, name: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecord(f"{name} is empty")


def _time(value: int | None, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord(f"{name} is not an integer timestamp: {value!r}")
    if not MIN_TIME_MS <= value < MAX_TIME_MS:
        raise InvalidRecord(f"{name} {value} is outside [2000-01-01, 2100-01-01)")


def _amount(value: int | None, name: str, limit: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord(f"{name} is not whole won: {value!r}")
    if value < 0:
        raise InvalidRecord(f"{name} is negative: {value}")
    if value > limit:
        raise InvalidRecord(f"{name} {value} is absurd (limit {limit})")


def _service(service: str, policy: Policy | None) -> None:
    _id(service, "service")
    if policy is not None and service not in policy.services:
        raise InvalidRecord(f"unknown service {service!r}")


def validate_window(w: OutageWindow, policy: Policy | None = None) -> None:
    """Raise InvalidRecord unless `w` is a well-formed revision (services checked when policy given)."""
    _id(w.incident_id, "incident_id")
    if w.revision < 0:
        raise InvalidRecord(f"revision is negative: {w.revision}")
    if not w.services:
        raise InvalidRecord("services is empty")
    for service in w.services:
        _service(service, policy)
    for name in ("started_at", "ended_at", "published_at"):
        _time(getattr(w, name), name)
    if w.status is IncidentStatus.OPEN and w.ended_at is not None:
        raise InvalidRecord("an OPEN window must not have ended_at")
    if w.status is IncidentStatus.CLOSED and w.ended_at is None:
        raise InvalidRecord("a CLOSED window needs ended_at")
    if w.ended_at is not None and w.ended_at < w.started_at:
        raise InvalidRecord("ended_at is before started_at")


def validate_entitlement(e: EntitlementState, policy: Policy) -> None:
    """Raise InvalidRecord unless `e` is a usable entitlement state."""
    _id(e.entitlement_id, "entitlement_id")
    _id(e.user_id, "user_id")
    _service(e.service, policy)
    for name in ("valid_from", "valid_until", "updated_at"):
        _time(getattr(e, name), name)
    if e.valid_until < e.valid_from:
        raise InvalidRecord("valid_until is before valid_from")
    _amount(e.price_krw, "price_krw", MAX_PRICE_KRW)
    if e.period_days < 1:
        raise InvalidRecord(f"period_days must be at least 1, got {e.period_days}")


def validate_report(r: DamageReport, policy: Policy) -> None:
    """Raise InvalidRecord unless `r` can be triaged. Reasons never quote report text."""
    _id(r.report_id, "report_id")
    _id(r.reporter_id, "reporter_id")
    _service(r.service, policy)
    if r.business_id is not None:
        _id(r.business_id, "business_id")
    if r.incident_id is not None:
        _id(r.incident_id, "incident_id")
    if r.reporter_kind is ReporterKind.BUSINESS and r.business_id is None:
        raise InvalidRecord("a BUSINESS report needs business_id")
    _amount(r.claimed_loss_krw, "claimed_loss_krw", MAX_CLAIM_KRW)
    _time(r.occurred_at, "occurred_at")
    _time(r.submitted_at, "submitted_at")
