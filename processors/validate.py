"""Semantic validation of decoded input records (DESIGN §4.4).

A record that fails here is not processed: the caller dead-letters it with the
reason, and processing continues.

Identifiers have a documented shape, so that a mangled record (a flipped bit, a truncated
or runaway string, a control character) is a dead letter rather than a new incident, user
or entitlement. All are printable ASCII without spaces:

| identifier | pattern | longest |
|---|---|---|
| incident_id (windows, reports) | `[A-Z0-9][A-Z0-9._-]*`, e.g. `INC-20221015-PANGYO` | 64 |
| entitlement_id, user_id, report_id, reporter_id, business_id | `[A-Za-z0-9][A-Za-z0-9._:@+-]*` | 128 |
| service codes | `[a-z0-9][a-z0-9-]*`, e.g. `emoticon-plus`; and known to the policy | 32 |

Incident ids are upper case: a bit flip that changes a letter's case (the commonest way a
mangled id stays printable) is caught. A flip that turns one allowed character into another
(`O` -> `N`, `2` -> `3`) cannot be seen in the id itself; what else stands between such a
window and an incident is that its services must be distinct codes the policy knows, its
times in range and in order, its status consistent with ended_at (see README, "Bad input").
Free text is bounded too (title, body, site, contacts), so no valid record outgrows the
outputs it becomes (a review case carries the report's text).
"""

from __future__ import annotations

import re

from processors.errors import InvalidRecord
from processors.model import (
    DamageReport,
    EntitlementState,
    IncidentApproval,
    IncidentStatus,
    OutageWindow,
    ReporterKind,
    ReviewDecision,
    Verdict,
)
from processors.policy import Policy

MIN_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, inclusive
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z, exclusive
MAX_PRICE_KRW = 100_000_000
MAX_CLAIM_KRW = 10**13


INCIDENT_ID = re.compile(r"[A-Z0-9][A-Z0-9._-]*")
INCIDENT_ID_MAX = 64
RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]*")
RECORD_ID_MAX = 128
SERVICE_CODE = re.compile(r"[a-z0-9][a-z0-9-]*")
SERVICE_CODE_MAX = 32
# Free text, in characters: a report's title and body travel to its review case, and that
# record must fit on remedy.reviews.v1 (about 1 MiB) with room to spare.
TEXT_MAX = {"title": 1_000, "body": 50_000, "site": 200, "contact_email": 254, "contact_phone": 32,
            "note": 2_000}
# A BCP 47 language tag as platforms send them (ko, ko-KR, en_US); one we do not write falls back
# to the policy's language, a malformed one is a dead letter like any mangled field.
LOCALE = re.compile(r"[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*")
LOCALE_MAX = 35


def _shape(value: str, pattern: re.Pattern, longest: int) -> str | None:
    """Why `value` is not an identifier of this shape (without echoing it), or None."""
    if len(value) > longest:
        return f"{len(value)} characters, longest allowed {longest}"
    bad = next((i for i, ch in enumerate(value) if not ch.isascii() or not ch.isprintable()), None)
    if bad is not None:
        return f"unprintable or non-ASCII character U+{ord(value[bad]):04X} at position {bad}"
    if pattern.fullmatch(value) is None:
        return f"does not match {pattern.pattern}"
    return None


def _id(value: object, name: str, pattern: re.Pattern = RECORD_ID, longest: int = RECORD_ID_MAX) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecord(f"{name} is empty")
    why = _shape(value, pattern, longest)
    if why is not None:
        raise InvalidRecord(f"{name} is not a valid identifier: {why}")


def _incident_id(value: object, name: str = "incident_id") -> None:
    _id(value, name, INCIDENT_ID, INCIDENT_ID_MAX)


def _text(value: str | None, name: str) -> None:
    if value is not None and len(value) > TEXT_MAX[name]:
        raise InvalidRecord(f"{name} is {len(value):,} characters, longest allowed {TEXT_MAX[name]:,}")


def _time(value: int | None, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord(f"{name} is not an integer timestamp: {value!r}")
    if not MIN_TIME_MS <= value < MAX_TIME_MS:
        hint = ""
        if MIN_TIME_MS // 1000 <= value < MAX_TIME_MS // 1000:   # a date of 1970 read as millis
            hint = " (epoch seconds? timestamps are epoch milliseconds)"
        raise InvalidRecord(f"{name} {value} is outside [2000-01-01, 2100-01-01){hint}")


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
    _id(service, "service", SERVICE_CODE, SERVICE_CODE_MAX)
    if policy is not None and service not in policy.services:
        raise InvalidRecord(f"unknown service {service!r}")


# The field an input topic is keyed by (DESIGN §2), for the records whose key is checked.
KEY_FIELDS = {OutageWindow: "incident_id", DamageReport: "reporter_id", ReviewDecision: "reporter_id",
              IncidentApproval: "incident_id", EntitlementState: "entitlement_id"}


def _locale(value: str | None) -> None:
    if value is not None:
        _id(value, "locale", LOCALE, LOCALE_MAX)


def validate_key(record: OutageWindow | EntitlementState | DamageReport | ReviewDecision | IncidentApproval,
                 key: bytes | None) -> None:
    """Raise InvalidRecord unless `key`, the Kafka key the record was read with, is the
    record's key field. The producer chose the key from the record; a value mangled after that
    (a flipped bit inside an id that still looks valid) no longer says what its key says."""
    name = KEY_FIELDS[type(record)]
    if key is None:
        raise InvalidRecord(f"the record has no key; it must be keyed by its {name}")
    if key != getattr(record, name).encode():
        raise InvalidRecord(f"the record's key is not its {name}")


def validate_window(w: OutageWindow, policy: Policy | None = None) -> None:
    """Raise InvalidRecord unless `w` is a well-formed revision (services checked when policy given)."""
    _incident_id(w.incident_id)
    if w.revision < 0:
        raise InvalidRecord(f"revision is negative: {w.revision}")
    if not w.services:
        raise InvalidRecord("services is empty")
    for service in w.services:
        _service(service, policy)
    if len(set(w.services)) != len(w.services):
        raise InvalidRecord("services lists a service more than once")
    _text(w.site, "site")
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
    _locale(e.locale)


def validate_report(r: DamageReport, policy: Policy) -> None:
    """Raise InvalidRecord unless `r` can be triaged. Reasons never quote report text."""
    _id(r.report_id, "report_id")
    _id(r.reporter_id, "reporter_id")
    _service(r.service, policy)
    if r.business_id is not None:
        _id(r.business_id, "business_id")
    if r.incident_id is not None:
        _incident_id(r.incident_id)
    for name in ("title", "body", "contact_email", "contact_phone"):
        _text(getattr(r, name), name)
    if r.reporter_kind is ReporterKind.BUSINESS and r.business_id is None:
        raise InvalidRecord("a BUSINESS report needs business_id")
    _amount(r.claimed_loss_krw, "claimed_loss_krw", MAX_CLAIM_KRW)
    _time(r.occurred_at, "occurred_at")
    _time(r.submitted_at, "submitted_at")
    _locale(r.locale)


def validate_approval(a: IncidentApproval, policy: Policy | None = None) -> None:
    """Raise InvalidRecord unless `a` is a well-formed approval (whether its revision exists and
    is held is the gate's business: processors.approval)."""
    _incident_id(a.incident_id)
    if a.revision < 0:
        raise InvalidRecord(f"revision is negative: {a.revision}")
    _id(a.approved_by, "approved_by")
    _time(a.approved_at, "approved_at")
    _amount(a.remedies, "remedies", MAX_CLAIM_KRW)
    _amount(a.amount_krw, "amount_krw", MAX_CLAIM_KRW)


def validate_decision(d: ReviewDecision, policy: Policy | None = None) -> None:
    """Raise InvalidRecord unless `d` is a decision that can be applied to a case (whether the
    case exists is the worker's to say). Reasons never quote the note."""
    _id(d.case_id, "case_id")
    if d.review_id is not None:
        _id(d.review_id, "review_id")
    _id(d.reporter_id, "reporter_id")
    _id(d.reviewer_id, "reviewer_id")
    _text(d.note, "note")
    _time(d.decided_at, "decided_at")
    if d.verdict is Verdict.APPROVE:
        if d.amount_krw is None or d.amount_krw == 0:
            raise InvalidRecord("an APPROVE decision needs amount_krw, a positive number of won")
        _amount(d.amount_krw, "amount_krw", MAX_CLAIM_KRW)
    elif d.amount_krw is not None:
        raise InvalidRecord("a DENY decision carries no amount_krw")
