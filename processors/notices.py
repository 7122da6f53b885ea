"""User notices: fixed template texts, built only from non-personal fields.

A notice's message never quotes a report's title, body or contacts (DESIGN §4.5);
it says what was done and why in plain English that translates cleanly to Korean.
"""

from __future__ import annotations

from processors.ids import notice_id
from processors.model import Action, NoticeKind, RemedyAction, Source, UserNotice

REPORT_MESSAGES: dict[str, str] = {
    "covered": "Thank you for your report. The compensation already issued to you for this "
    "outage covers this service.",
    "paid": "Thank you for your report. A compensation payment has been issued for your "
    "business under the published tiers.",
    "topped-up": "Thank you for your updated report. Your compensation payment has been "
    "increased to the higher tier.",
    "in-review": "Thank you for your report. It has been sent for review; we will contact "
    "you with the result.",
    "already-in-review": "Thank you for your report. It has been added to the case already "
    "under review.",
    "no-change": "Thank you for your updated report. It does not change the compensation "
    "already issued for your case.",
    "retracted": "Thank you for your report. The incident it refers to was withdrawn as a "
    "false alarm, so no compensation applies.",
    "too-early": "Thank you for your report. It was received before the incident began, so "
    "it cannot be matched to it.",
    "intake-closed": "Thank you for your report. It arrived after the report intake period "
    "for this incident closed, so it cannot be accepted.",
    "not-covered": "Thank you for your report. This kind of report is not compensated under "
    "the current policy.",
    "received": "Thank you for your report. The incident it refers to is still ongoing; your "
    "report will be decided once the incident is over, and we will tell you the result.",
}

# Opens the decision notice of a report that had been told its intake period was over, when a
# revision of the incident's times brings it inside after all.
RECONSIDERED = ("Update on your report: the incident's times were revised, which brings your "
                "report inside the report intake period after all. ")


def describe(remedy: RemedyAction) -> str:
    """One fixed sentence describing a remedy."""
    svc = remedy.service
    if remedy.action is Action.EXTEND:
        return f"Your {svc} entitlement has been extended by {remedy.extend_hours} hours to make up for the service outage."
    if remedy.action is Action.GRANT:
        return f"You have been granted a {svc} item usable for {remedy.extend_hours} hours to make up for the service outage."
    if remedy.action is Action.CREDIT:
        return f"A refund credit of {remedy.amount_krw} won for {svc} has been issued to make up for the service outage."
    if remedy.action is Action.PAYOUT:
        return f"A payment of {remedy.amount_krw} won has been issued for your damage report about {svc}."
    if remedy.amount_krw is not None:
        return f"A {svc} compensation of {remedy.amount_krw} won has been withdrawn because the incident was retracted."
    return f"A {svc} extension of {remedy.extend_hours} hours has been withdrawn because the incident was retracted."


def remedy_notice(remedy: RemedyAction, source: Source) -> UserNotice:
    """The notice that tells the remedy's user about it; its id derives from the remedy id."""
    kind = NoticeKind.REMEDY_REVERSED if remedy.action is Action.REVERSAL else NoticeKind.REMEDY_ISSUED
    return UserNotice(
        notice_id=notice_id("remedy", remedy.remedy_id),
        user_id=remedy.user_id,
        incident_id=remedy.incident_id,
        kind=kind,
        remedy_ids=(remedy.remedy_id,),
        report_id=None,
        message=describe(remedy),
        policy_version=remedy.policy_version,
        decided_at=remedy.decided_at,
        source=source,
    )


def report_notice(
    *,
    report_id: str,
    user_id: str,
    incident_id: str | None,
    kind: NoticeKind,
    why: str,
    remedy_ids: tuple[str, ...],
    policy_version: str,
    decided_at: int,
    source: Source,
    reconsidered: bool = False,
) -> UserNotice:
    """A report-level notice; `why` keys REPORT_MESSAGES.

    Each report gets at most three, each with an id of its own so none hides another in the
    ledger: a receipt (REPORT_RECEIVED) while its incident is open, the decision ("report"),
    and, for a report told its intake was over and then admitted by a revision, the decision
    that says so ("report-reconsidered"; its "report" notice is then the rejection).
    """
    if kind is NoticeKind.REPORT_RECEIVED:
        nid, message = notice_id("report-received", report_id), REPORT_MESSAGES[why]
    elif reconsidered:
        nid, message = notice_id("report-reconsidered", report_id), RECONSIDERED + REPORT_MESSAGES[why]
    else:
        nid, message = notice_id("report", report_id), REPORT_MESSAGES[why]
    return UserNotice(
        notice_id=nid,
        user_id=user_id,
        incident_id=incident_id,
        kind=kind,
        remedy_ids=remedy_ids,
        report_id=report_id,
        message=message,
        policy_version=policy_version,
        decided_at=decided_at,
        source=source,
    )
