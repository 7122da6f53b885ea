"""Notices people read (#16): templates as data, human units, digests, languages."""
from __future__ import annotations

import copy
import dataclasses
from importlib import resources

import pytest
import yaml

from processors import ids
from processors.entitlements import decide_entitlement
from processors.errors import PolicyError
from processors.model import Action, BillingChannel, EntitlementKind, NoticeKind
from processors.reports import triage_report
from processors.units import duration, local_time, normalize_locale, won
from processors.windows import IncidentHistory
from processors.wording import SPEC, parse_templates, templates
from tests.factories import DAY, END, HOUR, INCIDENT, START, business, ent, reference, src, window

POLICY = reference()
SHIPPED = yaml.safe_load((resources.files("processors") / "templates" / "notices.yaml").read_text("utf-8"))


@pytest.mark.parametrize("hours, ko, en", [(72, "3일", "3 days"), (2160, "90일", "90 days"), (24, "1일", "1 day"),
                                           (30, "30시간", "30 hours"), (1, "1시간", "1 hour")])
def test_durations_in_days_when_whole(hours, ko, en):
    assert duration(hours, "ko") == ko and duration(hours, "en") == en


def test_won_with_thousands_separators():
    assert won(490, "ko") == "490원" and won(20_000, "ko") == "20,000원"
    assert won(20_000, "en") == "20,000 won" and won(1_234_567, "en") == "1,234,567 won"


def test_local_time_in_the_incidents_zone():
    assert local_time(START, "Asia/Seoul", "ko") == "2022년 10월 15일 15:30 (KST)"
    assert local_time(START, "Asia/Seoul", "en") == "15 October 2022, 15:30 KST"
    assert local_time(START, "UTC", "en") == "15 October 2022, 06:30 UTC"


@pytest.mark.parametrize("raw, got", [("ko", "ko"), ("ko-KR", "ko"), ("ko_KR", "ko"), ("EN-us", "en"),
                                      ("ja-JP", None), ("", None), (None, None)])
def test_locales_normalised_to_the_languages_we_write(raw, got):
    assert normalize_locale(raw) == got


def test_shipped_templates_cover_every_key_in_every_locale():
    t = templates()
    for section, keys in SPEC.items():
        for key in keys:
            for locale in ("ko", "en"):
                assert (section, key, locale) in t.text


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d["remedy"]["EXTEND"].pop("ko"), "remedy.EXTEND"),
    (lambda d: d["report"].pop("intake-closed"), "report.intake-closed"),
    (lambda d: d["report"]["intake-closed"].update(en="Too late."), "missing placeholders ['deadline']"),
    (lambda d: d["remedy"]["CREDIT"].update(ko="{service} {amount} {body}"), "unknown placeholders ['body']"),
    (lambda d: d["review"].update(extra={"ko": "x", "en": "y"}), "review.extra"),
    (lambda d: d["digest"]["ids"].update(en="{ids"), "bad template"),
    (lambda d: d.update(locales=["ko"]), "locales"),
])
def test_a_broken_template_file_is_refused_at_load(mutate, problem):
    doc = copy.deepcopy(SHIPPED)
    mutate(doc)
    with pytest.raises(PolicyError) as err:
        parse_templates(doc, "notices.yaml")
    assert problem in str(err.value)


def test_policy_carries_locale_and_zone():
    assert (POLICY.locale, POLICY.time_zone) == ("ko", "Asia/Seoul")


def test_policy_refuses_an_unknown_zone_or_locale():
    from processors.policy import parse_policy
    base = {"version": "v", "services": ["melon"], "rules": []}
    with pytest.raises(PolicyError, match="notices.time_zone"):
        parse_policy({**base, "notices": {"time_zone": "Mars/Olympus"}}, "p.yaml")
    with pytest.raises(PolicyError, match="notices.locale"):
        parse_policy({**base, "notices": {"locale": "tlh"}}, "p.yaml")
    assert parse_policy(base, "p.yaml").locale == "en"


def test_entitlement_notice_in_korean_by_default_with_days():
    d = decide_entitlement(POLICY, IncidentHistory.of([window()]), ent(locale=None), src())
    (n,) = d.notices
    assert n.locale == "ko" and "이모티콘 플러스 이용 기간을 3일 연장했습니다." in n.message
    assert n.notice_id == ids.notice_id("remedy", d.remedies[0].remedy_id)   # stable across #16
    assert d.remedies[0].remedy_id in n.message and "72" not in n.message


def test_grant_reads_as_days_not_hours():
    member = ent(service="kakaotalk", kind=EntitlementKind.MEMBERSHIP, billing_channel=BillingChannel.NONE)
    (n,) = decide_entitlement(POLICY, IncidentHistory.of([window()]), member, src()).notices
    assert "KakaoTalk emoticon pack, usable for 90 days" in n.message and "2160" not in n.message


def test_credit_in_won_and_in_the_records_language():
    store = ent(billing_channel=BillingChannel.APP_STORE, locale="en-US")
    (n,) = decide_entitlement(POLICY, IncidentHistory.of([window()]), store, src()).notices
    assert n.locale == "en" and "A refund credit of 490 won for Emoticon Plus" in n.message


def test_a_lengthening_revision_tops_up_and_states_the_new_total():
    voucher = ent(service="gift", kind=EntitlementKind.VOUCHER, billing_channel=BillingChannel.NONE,
                  valid_until=START + HOUR)
    history = IncidentHistory.of([window(revision=1, ended_at=START + 20 * HOUR),
                                  window(revision=2, ended_at=END, published_at=END + 2 * HOUR)])
    d = decide_entitlement(POLICY, history, voucher, src())
    first, topup = d.notices
    assert first.remedy_ids == (d.remedies[0].remedy_id,) and "by 1 day." in first.message
    assert topup.remedy_ids == (d.remedies[1].remedy_id,)
    assert "extended by 5 days more, 6 days in all" in topup.message
    ko = decide_entitlement(POLICY, history, dataclasses.replace(voucher, locale="ko"), src()).notices[1]
    assert "5일 더 연장해, 이번 장애로 모두 6일" in ko.message


def test_a_report_decision_is_one_digest_with_its_payout():
    case = None
    d1, case = triage_report(POLICY, {INCIDENT: IncidentHistory.of([window()])},
                             business(claimed_loss_krw=100_000, locale="ko"), src(1), case, [])
    (n1,) = d1.notices
    assert n1.kind is NoticeKind.REPORT_COVERED and n1.remedy_ids == (d1.remedies[0].remedy_id,)
    assert "보상금 30,000원을 지급했습니다" in n1.message
    d2, case = triage_report(POLICY, {INCIDENT: IncidentHistory.of([window()])},
                             business(report_id="R-2", claimed_loss_krw=400_000, submitted_at=END + 3 * DAY),
                             src(2), case, [])
    (n2,) = d2.notices
    (top,) = d2.remedies
    assert top.action is Action.PAYOUT and top.amount_krw == 20_000
    assert "An additional 20,000 won has been paid, bringing your compensation to 50,000 won." in n2.message


def test_a_rejection_states_the_deadline_in_the_incidents_zone():
    late = business(claimed_loss_krw=100_000, submitted_at=END + 40 * DAY, locale="ko")
    d, _ = triage_report(POLICY, {INCIDENT: IncidentHistory.of([window()])}, late, src(), None, [])
    (n,) = d.notices
    # closed 2022-10-20 22:30 KST; intake 14 days + 14 for businesses
    assert n.kind is NoticeKind.REPORT_REJECTED and "2022년 11월 17일 22:30 (KST)에 마감" in n.message


def test_no_personal_data_in_any_notice():
    r = business(claimed_loss_krw=900_000)
    d, _ = triage_report(POLICY, {INCIDENT: IncidentHistory.of([window()])}, r, src(), None, [])
    for n in d.notices:
        for secret in (r.title, r.body, r.contact_email, r.contact_phone):
            assert secret not in n.message
