"""Policy loading: the reference file, and malformed policies naming file, rule and field."""

from __future__ import annotations

import copy

import pytest
import yaml
from tests.factories import REFERENCE, reference

from processors.errors import MakegoodError, PolicyError
from processors.model import BillingChannel, EntitlementKind
from processors.policy import load_policy, parse_policy

BASE = yaml.safe_load(REFERENCE.read_text())


def test_reference_loads():
    p = reference()
    assert p.version == "kakao-1015.1" and p.on_retract == "keep"
    assert "kakaotalk" in p.services
    assert len(p.rules) == 8
    assert p.rules_for("daum", EntitlementKind.POINTS, BillingChannel.NONE) == ()
    (r,) = p.rules_for("gift", EntitlementKind.COUPON, BillingChannel.WEB)
    assert r.id == "gift-shopping-expired"
    assert p.reports.intake_ms == 14 * 24 * 3_600_000


def broken(mutate) -> PolicyError:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(PolicyError) as info:
        parse_policy(data, "broken.yaml")
    assert isinstance(info.value, MakegoodError)
    return info.value


def rule(data, rule_id):
    return next(r for r in data["rules"] if r["id"] == rule_id)


def test_unknown_key():
    e = broken(lambda d: rule(d, "melon-subscription").update(colour="green"))
    assert ("broken.yaml", "melon-subscription", "colour") == (e.origin, e.rule, e.field)
    assert "broken.yaml" in str(e) and "melon-subscription" in str(e) and "colour" in str(e)


def test_bad_duration():
    e = broken(lambda d: rule(d, "emoticon-plus-web").update(remedy={"extend": "72x"}))
    assert (e.rule, e.field) == ("emoticon-plus-web", "remedy.extend") and "72x" in str(e)


def test_overlapping_rules():
    def add(d):
        d["rules"].append({"id": "melon-again", "services": ["melon"], "eligible": "active_during_window",
                           "remedy": {"extend": "24h"}})
    e = broken(add)
    assert e.rule == "melon-again" and "melon-subscription" in str(e)


def test_rules_restricted_to_different_incidents_may_share_a_key():
    data = copy.deepcopy(BASE)
    rule(data, "melon-subscription")["incidents"] = ["INC-A"]
    data["rules"].append({"id": "melon-b", "services": ["melon"], "incidents": ["INC-B"],
                          "eligible": "active_during_window", "remedy": {"extend": "24h"}})
    p = parse_policy(data, "ok.yaml")
    assert len(p.rules_for("melon", EntitlementKind.SUBSCRIPTION, BillingChannel.WEB)) == 2


def test_negative_payout():
    e = broken(lambda d: d["reports"]["business"]["tiers"][0].update(payout=-1))
    assert (e.rule, e.field) == ("business-under-300k", "payout")


def test_unknown_eligibility_and_remedy():
    e = broken(lambda d: rule(d, "kakaotv-vod-pass").update(eligible="vibes"))
    assert (e.rule, e.field) == ("kakaotv-vod-pass", "eligible")
    e = broken(lambda d: rule(d, "kakaotv-vod-pass").update(remedy={"refund": "1h"}))
    assert (e.rule, e.field) == ("kakaotv-vod-pass", "remedy.refund")


def test_unknown_service_and_enum():
    e = broken(lambda d: rule(d, "kakaotv-vod-pass").update(services=["netflix"]))
    assert e.field == "services" and "netflix" in str(e)
    e = broken(lambda d: rule(d, "kakaotv-vod-pass").update(kinds=["DVD"]))
    assert e.field == "kinds"


def test_active_at_needs_an_offset():
    e = broken(lambda d: rule(d, "melon-subscription").update(eligible={"active_at": "2022-10-16T00:00"}))
    assert e.field == "eligible.active_at"


def test_tiers_must_be_contiguous_and_other_top_level_errors():
    e = broken(lambda d: d["reports"]["business"]["tiers"][1].update(min_loss=300_001))
    assert e.field == "min_loss"
    e = broken(lambda d: d.update(on_retract="maybe"))
    assert (e.rule, e.field) == (None, "on_retract")
    e = broken(lambda d: d.update(surprise=1))
    assert e.field == "surprise"
    e = broken(lambda d: d["rules"].append(dict(rule(d, "melon-subscription"))))
    assert e.field == "id"


def test_load_policy_reports_unreadable_files():
    with pytest.raises(PolicyError) as info:
        load_policy("/nonexistent/policy.yaml")
    assert "/nonexistent/policy.yaml" in str(info.value)


def test_timezone_is_optional_and_checked():
    assert reference().timezone == "Asia/Seoul"
    data = yaml.safe_load(open(REFERENCE, encoding="utf-8"))
    data.pop("timezone", None)
    assert parse_policy(data, "p").timezone == "Asia/Seoul"        # the default is the reference's zone
    data["timezone"] = "UTC"
    assert parse_policy(data, "p").timezone == "UTC"
    data["timezone"] = "Asia/Pangyo"
    with pytest.raises(PolicyError, match="timezone.*unknown IANA time zone 'Asia/Pangyo'"):
        parse_policy(data, "p")
