"""Deterministic identifiers (DESIGN §4.1): the same facts always give the same id.

Every id is a UUIDv5 under one fixed namespace, so a replay, a restart or a dry run
recomputes exactly the ids the ledger already holds.
"""

from __future__ import annotations

import hashlib
import uuid

NAMESPACE: uuid.UUID = uuid.UUID("66cbde23-9855-4b33-98e7-5acbddd6a126")

# SHA-1 state after the namespace bytes: every id starts from a copy of it.
_NAMESPACED_SHA1 = hashlib.sha1(NAMESPACE.bytes)
# RFC 4122 variant: the top two bits of the 17th hex digit become 10, i.e. it is one of 8-b.
_VARIANT_DIGIT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def uuid5_str(name: str) -> str:
    """str(uuid.uuid5(NAMESPACE, name)), computed straight from the hex digest.

    The ids are made on every decision; uuid.uuid5 builds a UUID object (int parsing,
    bit masking, re-formatting) only for us to turn it back into this string, which
    cost about half the time of deciding an entitlement.
    """
    sha = _NAMESPACED_SHA1.copy()
    sha.update(name.encode("utf-8"))
    h = sha.hexdigest()
    # Version 5 replaces the 13th hex digit; the variant bits the 17th.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"


def _make(*parts: object) -> str:
    # None (a missing business id) joins as "", which no valid id can be.
    return uuid5_str("|".join(["" if p is None else str(p) for p in parts]))


def remedy_id(incident_id: str, rule_id: str, subject_id: str, seq: int) -> str:
    """Id of the seq-th remedy (0 = first, then top-ups/reversals) of one rule for one subject."""
    return _make(incident_id, rule_id, subject_id, seq)


def case_id(incident_id: str, reporter_id: str, business_id: str | None) -> str:
    """Id of the one report case per (incident, reporter, business)."""
    return _make(incident_id, reporter_id, business_id)


def review_id(case_id: str, reason: str) -> str:
    """Id of the review opened for a case for one reason (at most one per reason)."""
    return _make(case_id, reason)


def notice_id(*parts: object) -> str:
    """Id of a user notice; callers pass e.g. ("remedy", remedy_id) or ("report", report_id)."""
    return _make(*parts)


def decision_notice_id(case_id: str, n: int) -> str:
    """Id of the notice of the `n`-th distinct decision applied to a case (0: the first)."""
    return notice_id("review-decision", case_id, n)
