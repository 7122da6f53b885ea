"""User notices: one per user per decision, a digest of what that decision gave them.

A *decision* is a unit the deciding code knows completely at once, so the live worker, a
replay and the batch evaluator produce the same notices byte for byte:
- one entitlement at one revision of its incident (processors.entitlements): the remedies that
  revision first owed it (an extension, then a top-up when a later revision lengthens the
  window, or the reversals of a retraction);
- one report's triage (processors.reports): the receipt, the rejection, the decision, each with
  the payout it made;
- one reviewer's decision on a case (processors.decisions).
A digest across a user's entitlements is not one of them: the entitlements of a user lie on
different partitions (keyed by entitlement), so no worker ever knows that it has seen them all.

Words come from processors/templates/notices.yaml (processors.wording), in the user's
language (the record's `locale`, else the policy's) with human units (processors.units). A
notice never quotes a report's title, body or contacts (DESIGN §4.5).

Ids stay what they were before digests, so upgrading never re-sends a notice: a digest of one
remedy is ("remedy", remedy_id), of several ("remedies", *remedy_ids); report notices are
("report" | "report-received" | "report-reconsidered", report_id).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from processors.ids import notice_id
from processors.model import Action, NoticeKind, RemedyAction, Source, UserNotice
from processors.policy import Policy
from processors.units import duration, local_time, normalize_locale, won
from processors.wording import templates

Given = tuple[RemedyAction, int]    # a remedy and the total its rule owes the subject after it


def locale_for(policy: Policy, record_locale: str | None) -> str:
    """The language to write to a user in: theirs when we write it, else the policy's."""
    return (_language(record_locale) if record_locale else None) or policy.locale


_language = lru_cache(maxsize=256)(normalize_locale)


def when(policy: Policy, at_ms: int, locale: str) -> str:
    """An instant in the policy's time zone (the incident's users' clocks)."""
    return local_time(at_ms, policy.time_zone, locale)


def remedy_line(policy: Policy, locale: str, remedy: RemedyAction, total: int) -> str:
    """One sentence about one remedy; `total` (hours or won) is what its rule owes in all."""
    return _line(policy, locale, remedy.action, remedy.service, remedy.rule_id, remedy.extend_hours,
                 remedy.amount_krw, total)


# The same few sentences are written for thousands of users (a sweep decides every stored
# entitlement again and again): each is formatted once.
@lru_cache(maxsize=16_384)
def _line(policy: Policy, locale: str, action: Action, service_code: str, rule_id: str, hours: int | None,
          amount: int | None, total: int) -> str:
    t = templates()
    service = t.name("services", service_code, locale)
    if action is Action.REVERSAL:
        if amount is not None:
            return t.say("remedy", "REVERSAL_MONEY", locale, service=service, amount=won(amount, locale))
        return t.say("remedy", "REVERSAL_HOURS", locale, service=service, duration=duration(hours or 0, locale))
    if action is Action.CREDIT:
        return t.say("remedy", "CREDIT", locale, service=service, amount=won(amount or 0, locale))
    if action is Action.PAYOUT:
        key = "PAYOUT_TOPUP" if total > (amount or 0) else "PAYOUT"
        return t.say("remedy", key, locale, service=service, amount=won(amount or 0, locale),
                     total=won(total, locale))
    topup = total > (hours or 0)
    values = dict(service=service, duration=duration(hours or 0, locale), total=duration(total, locale))
    if action is Action.GRANT:
        rule = next((r for r in policy.rules if r.id == rule_id), None)
        item = rule.remedy.item if rule is not None and rule.remedy.item else rule_id
        values["item"] = t.name("items", item, locale)
        return t.say("remedy", "GRANT_TOPUP" if topup else "GRANT", locale, **values)
    return t.say("remedy", "EXTEND_TOPUP" if topup else "EXTEND", locale, **values)


def _with_lines(policy: Policy, locale: str, opening: str, given: Sequence[Given],
                ids: Sequence[str]) -> str:
    parts = [opening, *(remedy_line(policy, locale, r, total) for r, total in given)]
    if ids:
        parts.append(templates().say("digest", "ids", locale, ids=", ".join(ids)))
    return " ".join(parts)


@lru_cache(maxsize=256)
def _opening(locale: str, key: str, incident_id: str) -> str:
    return templates().say("digest", key, locale, incident=incident_id)


def digest_id(remedy_ids: Sequence[str]) -> str:
    return notice_id("remedy", remedy_ids[0]) if len(remedy_ids) == 1 else notice_id("remedies", *remedy_ids)


def remedies_notice(policy: Policy, locale: str, given: Sequence[Given], source: Source) -> UserNotice:
    """The digest of the remedies one decision gave one entitlement's user (non-empty)."""
    first = given[0][0]
    ids = tuple(r.remedy_id for r, _ in given)
    reversed_ = all(r.action is Action.REVERSAL for r, _ in given)
    opening = _opening(locale, "reversed" if reversed_ else "issued", first.incident_id)
    return UserNotice(
        notice_id=digest_id(ids),
        user_id=first.user_id,
        incident_id=first.incident_id,
        kind=NoticeKind.REMEDY_REVERSED if reversed_ else NoticeKind.REMEDY_ISSUED,
        remedy_ids=ids,
        report_id=None,
        message=_with_lines(policy, locale, opening, given, ids),
        policy_version=policy.version,
        decided_at=max(r.decided_at for r, _ in given),
        source=source,
        locale=locale,
    )


def report_notice(
    *,
    policy: Policy,
    locale: str,
    report_id: str,
    user_id: str,
    incident_id: str | None,
    kind: NoticeKind,
    why: str,
    remedy_ids: tuple[str, ...],
    decided_at: int,
    source: Source,
    reconsidered: bool = False,
    given: Sequence[Given] = (),
    section: str = "report",
    nid: str | None = None,
    **values: str,
) -> UserNotice:
    """A report-level notice; `why` keys the templates of `section`, `values` fill their
    placeholders (`deadline`, `started`), `given` are the remedies this decision made. A review
    decision's notice (section "review") comes with its own id `nid`.

    Each report gets at most three, each with an id of its own so none hides another in the
    ledger: a receipt (REPORT_RECEIVED) while its incident is open, the decision ("report"),
    and, for a report told its intake was over and then admitted by a revision, the decision
    that says so ("report-reconsidered"; its "report" notice is then the rejection).
    """
    t = templates()
    message = t.say(section, why, locale, **values)
    if nid is not None:
        pass
    elif kind is NoticeKind.REPORT_RECEIVED:
        nid = notice_id("report-received", report_id)
    elif reconsidered:
        nid = notice_id("report-reconsidered", report_id)
        message = t.say("report", "reconsidered", locale) + " " + message
    else:
        nid = notice_id("report", report_id)
    return UserNotice(
        notice_id=nid,
        user_id=user_id,
        incident_id=incident_id,
        kind=kind,
        remedy_ids=remedy_ids,
        report_id=report_id,
        message=_with_lines(policy, locale, message, given, remedy_ids),
        policy_version=policy.version,
        decided_at=decided_at,
        source=source,
        locale=locale,
    )
