"""Deterministic identifiers (DESIGN §4.1): the same facts always give the same id.

Every id is a UUIDv5 under one fixed namespace, so a replay, a restart or a dry run
recomputes exactly the ids the ledger already holds.
"""

from __future__ import annotations

import uuid

NAMESPACE: uuid.UUID = uuid.UUID("66cbde23-9855-4b33-98e7-5acbddd6a126")


def _make(*parts: object) -> str:
    # None (a missing business id) joins as "", which no valid id can be.
    return str(uuid.uuid5(NAMESPACE, "|".join("" if p is None else str(p) for p in parts)))


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
