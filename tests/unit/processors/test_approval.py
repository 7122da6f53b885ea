"""The approval gate (processors.approval) and the batch evaluator's use of it."""
from __future__ import annotations

import dataclasses

import pytest

from processors.approval import (Cost, cost_from, effective, estimate, holds, released,
                                 report_incidents)
from processors.batch import evaluate
from processors.errors import PolicyError
from processors.limits import Limits
from processors.model import (BillingChannel, DamageReport, EntitlementKind, EntitlementState, EntitlementStatus,
                              IncidentApproval, IncidentStatus, OutageWindow, ReportCategory, ReporterKind, Source)
from processors.policy import load_policy, parse_policy
from processors.windows import IncidentHistory
from streams.settings import ROOT

H = 3_600_000
T0 = 1665814740000
INC = "INC-1"
LIMITS = Limits(above_remedies=2, above_won=1_000_000)


def window(rev: int, status: IncidentStatus, hours: int | None) -> OutageWindow:
    return OutageWindow(INC, rev, status, ("emoticon-plus", "melon"), T0, None if hours is None else T0 + hours * H,
                        "pangyo", T0 + (hours or 0) * H + rev)


HISTORY = IncidentHistory.of([window(1, IncidentStatus.OPEN, None), window(2, IncidentStatus.CLOSED, 100),
                              window(3, IncidentStatus.CLOSED, 127)])


def c(n: int, won: int = 0) -> Cost:
    return cost_from([("melon", "EXTEND", n, won)])


def test_cost_sums_by_service_and_action_and_round_trips():
    total = cost_from([("melon", "EXTEND", 1, 0), ("emoticon-plus", "CREDIT", 1, 490), ("melon", "EXTEND", 2, 0)])
    assert total == Cost(4, 490, (("emoticon-plus", "CREDIT", 1, 490), ("melon", "EXTEND", 3, 0)))
    assert Cost.from_plain(total.to_plain()) == total
    assert total.plus(total).remedies == 8


def test_no_limits_release_everything():
    assert released(HISTORY, {}, {}, None) == 3


def test_open_revisions_need_no_estimate_and_unknown_cost_waits():
    assert released(HISTORY, {}, {}, LIMITS) == 1                      # revision 2: not counted yet
    assert [h.state for h in holds(HISTORY, {}, {}, LIMITS)] == ["estimating", "behind"]


def test_within_limits_is_released_over_is_held_and_later_ones_wait_behind():
    assert released(HISTORY, {2: c(2), 3: c(2)}, {}, LIMITS) == 3
    assert released(HISTORY, {2: c(2), 3: c(3)}, {}, LIMITS) == 2       # cumulative: per incident
    assert released(HISTORY, {2: c(3), 3: c(3)}, {}, LIMITS) == 1
    assert released(HISTORY, {2: c(0, 1_000_001), 3: c(0)}, {}, LIMITS) == 1    # won alone
    hs = holds(HISTORY, {2: c(3), 3: c(4)}, {}, LIMITS)
    assert [(h.revision, h.state, h.behind) for h in hs] == [(2, "held", None), (3, "behind", 2)]
    assert effective(HISTORY, {2: c(3), 3: c(4)}, {}, LIMITS).revisions == HISTORY.revisions[:1]


def test_approving_the_latest_releases_what_it_supersedes_and_sets_the_baseline():
    assert released(HISTORY, {2: c(3), 3: c(4)}, {3: c(4)}, LIMITS) == 3
    # revision 2 approved: revision 3 is measured from its approved cost
    assert released(HISTORY, {2: c(3), 3: c(5)}, {2: c(3)}, LIMITS) == 3
    assert released(HISTORY, {2: c(3), 3: c(6)}, {2: c(3)}, LIMITS) == 2
    # an approval of a revision the history does not have releases nothing
    assert released(HISTORY, {2: c(3), 3: c(4)}, {7: c(4)}, LIMITS) == 1


def test_reports_about_a_held_incident_wait_others_see_released_incidents():
    report = DamageReport("r-1", "u-1", ReporterKind.INDIVIDUAL, None, "melon", INC, ReportCategory.OTHER, None,
                          T0 + H, "t", "b", None, None, T0 + 200 * H)
    assert report_incidents({INC: HISTORY}, {INC}, report) is None
    assert report_incidents({INC: HISTORY}, set(), report) == {INC: HISTORY}
    other = dataclasses.replace(report, incident_id="INC-2")
    assert report_incidents({INC: HISTORY}, {INC}, other) == {}


def test_policy_limits_are_parsed_and_checked():
    policy = load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml"))
    assert policy.approval == Limits(100_000, 100_000_000)
    base = {"version": "v", "services": ["melon"], "rules": []}
    assert parse_policy(base, "p").approval is None
    with pytest.raises(PolicyError, match="approval.above_won"):
        parse_policy(dict(base, approval={"above_remedies": 1}), "p")
    with pytest.raises(PolicyError, match="approval.above_remedies"):
        parse_policy(dict(base, approval={"above_remedies": -1, "above_won": 1}), "p")
    with pytest.raises(PolicyError, match="approval.other"):
        parse_policy(dict(base, approval={"above_remedies": 1, "above_won": 1, "other": 2}), "p")


def _ents(n: int) -> list:
    return [(EntitlementState(f"e{i}", f"u{i}", "melon", EntitlementKind.SUBSCRIPTION, BillingChannel.WEB,
                              EntitlementStatus.ACTIVE, T0 - 10 * 24 * H, T0 + 20 * 24 * H, 7590, 30, T0 - H),
             Source("e", 0, i)) for i in range(n)]


def test_the_batch_evaluator_holds_an_unapproved_over_limit_revision_and_releases_it_when_approved():
    policy = dataclasses.replace(load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml")),
                                 approval=Limits(2, 10**9))
    windows = [(w, Source("w", 0, i)) for i, w in enumerate(HISTORY.revisions)]
    ents = _ents(3)
    held = evaluate(policy, windows, ents, [])
    assert held.remedies == () and held.notices == ()
    assert [(h.revision, h.state, h.cost.remedies if h.cost else None) for h in held.holds] == [
        (2, "held", 3), (3, "behind", 3)]
    assert held.holds[0].cost == estimate(policy, HISTORY, 2, ents)
    approval = IncidentApproval(INC, 3, "sre-1", T0 + 300 * H, policy.version, 3, 0)
    done = evaluate(policy, windows, ents, [], approvals=[(approval, Source("a", 0, 0))])
    assert done.holds == () and len(done.remedies) == 3
    assert done.remedies == evaluate(dataclasses.replace(policy, approval=None), windows, ents, []).remedies
    bad = dataclasses.replace(approval, approved_by="")
    assert evaluate(policy, windows, ents, [], approvals=[(bad, Source("a", 0, 1))]).invalid[0].reason == "approved_by is empty"
