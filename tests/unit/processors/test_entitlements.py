"""The reference table of DESIGN §3, row by row, and the revision walk."""

from __future__ import annotations

import pytest
from tests.factories import DAY, END, HOUR, INCIDENT, START, ent, ms, reference, src, window

from processors.entitlements import credit_krw, decide_entitlement
from processors.ids import remedy_id
from processors.model import (
    Action,
    BillingChannel,
    EntitlementKind,
    EntitlementStatus,
    IncidentStatus,
    NoticeKind,
)
from processors.policy import Policy
from processors.windows import IncidentHistory

K = EntitlementKind
C = BillingChannel


@pytest.fixture(scope="module")
def policy() -> Policy:
    return reference()


def decide(policy: Policy, e, *windows):
    return decide_entitlement(policy, IncidentHistory.of(list(windows or [window()])), e, src(7))


@pytest.mark.parametrize(
    "service, kind, channel, action, hours, amount, rule",
    [
        ("emoticon-plus", K.SUBSCRIPTION, C.WEB, Action.EXTEND, 72, None, "emoticon-plus-web"),
        ("emoticon-plus", K.SUBSCRIPTION, C.APP_STORE, Action.CREDIT, None, 490, "emoticon-plus-in-app"),
        ("emoticon-plus", K.SUBSCRIPTION, C.PLAY_STORE, Action.CREDIT, None, 490, "emoticon-plus-in-app"),
        ("kakaopage", K.RENTAL, C.WEB, Action.EXTEND, 96, None, "kakaopage-rental"),
        ("kakaowebtoon", K.RENTAL, C.APP_STORE, Action.EXTEND, 72, None, "kakaowebtoon-rental"),
        ("kakaotv", K.VOD_PASS, C.CARRIER, Action.EXTEND, 96, None, "kakaotv-vod-pass"),
        ("melon", K.SUBSCRIPTION, C.PLAY_STORE, Action.EXTEND, 72, None, "melon-subscription"),
        ("kakaotalk", K.MEMBERSHIP, C.NONE, Action.GRANT, 2160, None, "kakaotalk-membership-emoticons"),
    ],
)
def test_reference_rows_for_active_entitlements(policy, service, kind, channel, action, hours, amount, rule):
    e = ent(service=service, kind=kind, billing_channel=channel)
    d = decide(policy, e)
    assert d.outcome == "remedied"
    (r,) = d.remedies
    assert (r.action, r.extend_hours, r.amount_krw, r.rule_id) == (action, hours, amount, rule)
    assert r.remedy_id == remedy_id(INCIDENT, rule, e.entitlement_id, 0)
    assert r.supersedes is None and r.source == src(7) and r.policy_version == policy.version
    assert r.decided_at == max(e.updated_at, window().published_at)
    (n,) = d.notices
    assert n.kind is NoticeKind.REMEDY_ISSUED and n.remedy_ids == (r.remedy_id,)


@pytest.mark.parametrize("service", ["gift", "shopping"])
@pytest.mark.parametrize("kind", [K.VOUCHER, K.COUPON, K.POINTS])
def test_expired_vouchers_extend_by_outage_rounded_to_days(policy, service, kind):
    e = ent(service=service, kind=kind, billing_channel=C.NONE, valid_until=START + 5 * HOUR,
            status=EntitlementStatus.EXPIRED, price_krw=0)
    (r,) = decide(policy, e).remedies
    assert r.action is Action.EXTEND and r.extend_hours == 144  # 127 h -> 6 days


def test_unexpired_voucher_is_not_eligible(policy):
    e = ent(service="gift", kind=K.VOUCHER, valid_until=END + DAY)
    assert decide(policy, e).outcome == "not-eligible"


def test_no_rule_is_fast_and_empty(policy):
    d = decide(policy, ent(service="daum", kind=K.POINTS))
    assert d.outcome == "no-rule" and not d.remedies and not d.notices


def test_credit_rounding():
    assert credit_krw(4_900, 72, 30) == 490
    assert credit_krw(1, 12, 1) == 1  # exactly 0.5 rounds up
    assert credit_krw(1, 11, 1) == 0  # 0.458 rounds down
    assert credit_krw(3, 4, 1) == 1  # 0.5 again, odd numbers
    assert credit_krw(0, 72, 30) == 0


# ------------------------------------------------------------- definitions, boundaries

def test_valid_until_equal_to_start_is_not_active_but_is_expired_during(policy):
    sub = ent(valid_until=START)
    assert decide(policy, sub).outcome == "not-eligible"
    voucher = ent(service="gift", kind=K.VOUCHER, billing_channel=C.NONE, valid_until=START)
    (r,) = decide(policy, voucher).remedies
    assert r.extend_hours == 144


def test_voucher_expiring_exactly_at_end_is_not_expired_during(policy):
    voucher = ent(service="shopping", kind=K.COUPON, billing_channel=C.NONE, valid_until=END)
    assert decide(policy, voucher).outcome == "not-eligible"


def test_valid_from_equal_to_end_is_not_active(policy):
    assert decide(policy, ent(valid_from=END, valid_until=END + 30 * DAY)).outcome == "not-eligible"
    assert decide(policy, ent(valid_from=END - 1, valid_until=END + 30 * DAY)).remedies


def test_zero_length_window_owes_nothing(policy):
    w = window(ended_at=START)
    assert decide(policy, ent(), w).outcome == "not-eligible"
    voucher = ent(service="gift", kind=K.VOUCHER, billing_channel=C.NONE, valid_until=START)
    assert decide(policy, voucher, w).outcome == "not-eligible"


@pytest.mark.parametrize("status", [EntitlementStatus.REFUNDED, EntitlementStatus.REDEEMED])
def test_refunded_or_redeemed_is_never_eligible(policy, status):
    assert decide(policy, ent(status=status)).outcome == "not-eligible"
    melon = ent(service="melon", status=status)
    assert decide(policy, melon).outcome == "not-eligible"


def test_canceled_still_runs_to_valid_until(policy):
    assert decide(policy, ent(status=EntitlementStatus.CANCELED)).remedies


def test_melon_active_at_midnight_kst_boundary(policy):
    t = ms("2022-10-16T00:00:00+09:00")
    melon = dict(service="melon", kind=K.SUBSCRIPTION)
    assert decide(policy, ent(**melon, valid_from=t, valid_until=t + DAY)).remedies
    assert not decide(policy, ent(**melon, valid_from=t - DAY, valid_until=t)).remedies
    assert decide(policy, ent(**melon, valid_from=t - DAY, valid_until=t + 1)).remedies
    assert not decide(policy, ent(**melon, valid_from=t + 1, valid_until=t + DAY)).remedies


def test_service_not_in_window_owes_nothing(policy):
    w = window(services=("kakaotalk",))
    assert decide(policy, ent(), w).outcome == "not-eligible"


def test_open_incident_is_pending(policy):
    w = window(status=IncidentStatus.OPEN)
    assert decide(policy, ent(), w).outcome == "pending"


# ------------------------------------------------------------- revisions

VOUCHER = dict(service="gift", kind=K.VOUCHER, billing_channel=C.NONE, valid_until=START + HOUR)


def test_lengthened_window_tops_up_duration_rules_only(policy):
    first = window(revision=1, ended_at=START + 20 * HOUR, published_at=END)
    longer = window(revision=2, ended_at=START + 127 * HOUR, published_at=END + DAY)
    d = decide(policy, ent(**VOUCHER), first, longer)
    seq0, topup = d.remedies
    assert seq0.extend_hours == 24 and seq0.supersedes is None
    assert topup.extend_hours == 120 and topup.supersedes == seq0.remedy_id
    assert topup.remedy_id == remedy_id(INCIDENT, "gift-shopping-expired", "ENT-1", 1)
    assert topup.decided_at == END + DAY
    # A fixed-hours rule is not topped up by a longer window.
    fixed = decide(policy, ent(), first, longer)
    assert [r.extend_hours for r in fixed.remedies] == [72]


def test_lengthened_window_makes_new_entitlements_eligible(policy):
    short = window(revision=1, ended_at=START + HOUR)
    longer = window(revision=2, ended_at=END)
    late = ent(valid_from=START + 2 * HOUR)
    assert decide(policy, late, short).outcome == "not-eligible"
    (r,) = decide(policy, late, short, longer).remedies
    assert r.remedy_id == remedy_id(INCIDENT, "emoticon-plus-web", "ENT-1", 0)


def test_shortened_window_never_shrinks_what_was_issued(policy):
    longer = window(revision=1, ended_at=END)
    shorter = window(revision=2, ended_at=START + HOUR)
    d = decide(policy, ent(**VOUCHER), longer, shorter)
    assert [r.extend_hours for r in d.remedies] == [144]


def test_late_older_revision_is_ignored(policy):
    newer = window(revision=3, ended_at=END)
    older = window(revision=2, ended_at=START + HOUR)
    history = IncidentHistory().accept(newer)
    assert history.accept(older) is None
    assert history.accept(newer) is None  # a redelivered revision too
    assert history.latest == newer


def test_retraction_keep_leaves_issued_remedies(policy):
    closed = window(revision=1)
    retracted = window(revision=2, status=IncidentStatus.RETRACTED, published_at=END + DAY)
    d = decide(policy, ent(), closed, retracted)
    assert [r.action for r in d.remedies] == [Action.EXTEND]
    assert decide(policy, ent(), retracted).outcome == "retracted"


def test_retraction_before_close_owes_nothing(policy):
    opened = window(revision=1, status=IncidentStatus.OPEN)
    retracted = window(revision=2, status=IncidentStatus.RETRACTED, ended_at=None)
    assert decide(policy, ent(), opened, retracted).outcome == "retracted"
