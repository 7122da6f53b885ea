"""The reference table of DESIGN §3, row by row, and the revision walk."""

from __future__ import annotations

import pytest
from factories import DAY, END, HOUR, INCIDENT, START, ent, ms, reference, src, window

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
