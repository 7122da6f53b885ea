"""The incident report's arithmetic and rendering, from hand-made records (no broker)."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

from processors.model import (Action, IncidentStatus, NoticeKind, RemedyAction, ReportCategory,
                              ReporterKind, ReviewCase, ReviewReason, SubjectKind, UserNotice)
from streams.errors import UnknownIncident
from streams.report.collect import aggregate, to_json
from streams.report.text import render_text
from streams.report.html import render_html
from tests.factories import END, HOUR, INCIDENT, src, window

SECRET = "my-secret-complaint-body"
CLOSED_TS = END + 2 * HOUR          # Kafka timestamp of the first CLOSED record


def remedy(rid: str, action: Action = Action.EXTEND, **kw: Any) -> RemedyAction:
    base: dict[str, Any] = dict(
        remedy_id=rid, incident_id=INCIDENT, rule_id="rule", policy_version="p1", action=action,
        user_id="U-1", subject_kind=SubjectKind.ENTITLEMENT, subject_id=f"E-{rid}", service="melon",
        extend_hours=72 if action in (Action.EXTEND, Action.GRANT) else None,
        amount_krw=None, supersedes=None, decided_at=END, source=src())
    base.update(kw)
    return RemedyAction(**base)


def review(rid: str, reason: ReviewReason, incident: str | None = INCIDENT) -> ReviewCase:
    return ReviewCase(
        review_id=rid, case_id=f"C-{rid}", incident_id=incident, reporter_id="biz1",
        reporter_kind=ReporterKind.BUSINESS, business_id="BRN-1", service="gift",
        category=ReportCategory.BUSINESS_LOSS, claimed_loss_krw=800_000, reason=reason,
        report_ids=("r1",), title="주문 누락", body=SECRET, contact_email="someone@example.com",
        contact_phone="010-1234-5678", policy_version="p1", decided_at=END, source=src())


def notice(nid: str, kind: NoticeKind, incident: str | None = INCIDENT) -> UserNotice:
    return UserNotice(notice_id=nid, user_id="U-1", incident_id=incident, kind=kind, remedy_ids=(),
                      report_id=None, message="fixed template", policy_version="p1", decided_at=END,
                      source=src())


def dead(offset: int, stage: str = "DECODE", topic: str = "ns1.damage.reports.v1",
         message: str = "bad magic") -> dict:
    return {"source_topic": topic, "source_partition": 0, "source_offset": offset, "key": b"k",
            "value": b"RAW-POISON-BYTES", "stage": stage, "error_class": "DecodeError",
            "error_message": message, "failed_at": END}


REMEDIES = [
    remedy("a", service="melon"),
    remedy("a", service="melon"),                      # duplicate record of the same id
    remedy("b", service="melon", user_id="U-2"),
    remedy("c", Action.CREDIT, service="emoticon-plus", extend_hours=None, amount_krw=1_225_000, user_id="U-3"),
    remedy("d", Action.PAYOUT, service="gift", extend_hours=None, amount_krw=30_000, user_id="biz1",
           subject_kind=SubjectKind.REPORT, subject_id="CASE-1"),
    remedy("e", Action.PAYOUT, service="gift", extend_hours=None, amount_krw=20_000, user_id="biz1",
           subject_kind=SubjectKind.REPORT, subject_id="CASE-1", supersedes="d"),       # top-up
    remedy("f", Action.EXTEND, service="gift", extend_hours=120, subject_id="E-g1"),
    remedy("g", Action.REVERSAL, service="gift", extend_hours=120, subject_id="E-g1", supersedes="f"),
    remedy("h", Action.GRANT, service="kakaotalk", extend_hours=2160, user_id="U-4"),
    remedy("x", incident_id="INC-OTHER"),              # another incident: ignored
]
STAMPS = {"a": 10, "b": 20, "c": 30, "d": 40, "e": 50, "f": 60, "g": 70, "h": 80, "x": 90}


def build(**kw: Any):
    windows = [(window(revision=1, status=IncidentStatus.OPEN), END - 100 * HOUR),
               (window(revision=2), CLOSED_TS),
               (window(revision=3, ended_at=END + 7 * HOUR), CLOSED_TS + 3_600_000),
               (window(incident_id="INC-OTHER", revision=9), 1)]
    remedies = [(r, CLOSED_TS + 1000 * STAMPS[r.remedy_id[0]]) for r in REMEDIES]
    reviews = [review("v1", ReviewReason.LARGE_BUSINESS_LOSS), review("v1", ReviewReason.LARGE_BUSINESS_LOSS),
               review("v2", ReviewReason.FREE_SERVICE), review("v3", ReviewReason.OTHER, incident=None)]
    notices = [notice("n1", NoticeKind.REMEDY_ISSUED), notice("n2", NoticeKind.REMEDY_ISSUED),
               notice("n3", NoticeKind.REPORT_IN_REVIEW), notice("n4", NoticeKind.REPORT_REJECTED, incident=None)]
    dls = [dead(1), dead(1), dead(2, message="corrupt Avro body"), dead(3, "VALIDATE", message="unknown service"),
           dead(4, "VALIDATE", topic="ns1.entitlement.states.v1", message="price_krw < 0")]
    outcomes = {"entitlement.states.v1": {"decided": 7, "stale": 1}}
    args: dict[str, Any] = dict(windows=windows, remedies=remedies, reviews=reviews, notices=notices,
                                dead_letters=dls, outcomes=outcomes, namespace="ns1")
    args.update(kw)
    return aggregate(INCIDENT, **args)


def test_incident_is_the_latest_revision():
    inc = build().incident
    assert (inc.status, inc.revision, inc.revisions) == ("CLOSED", 3, 3)
    assert inc.ended_at == END + 7 * HOUR and inc.duration_hours == pytest.approx(134.0)
    assert inc.site == "SK C&C Pangyo"


def test_totals_dedup_by_remedy_id_and_count_duplicates_apart():
    t = build().totals
    assert t.remedies == 8 and t.duplicate_records == 1
    assert (t.won_credited, t.won_paid_out, t.won_reversed) == (1_225_000, 50_000, 0)
    assert (t.hours_extended, t.hours_granted, t.hours_reversed) == (72 + 72 + 120, 2160, 120)
    assert (t.top_ups, t.reversals) == (1, 1)
    assert t.users_reached == 5               # U-1, U-2, U-3, biz1, U-4
    assert t.entitlements_covered == 5        # E-a, E-b, E-c, E-g1, E-h
    assert t.report_cases_paid == 1           # a top-up pays the same case again


def test_rows_by_service_and_action_with_top_ups_and_reversals():
    rows = {(r.service, r.action): r for r in build().remedies}
    assert rows[("melon", "EXTEND")].count == 2 and rows[("melon", "EXTEND")].hours == 144
    payout = rows[("gift", "PAYOUT")]
    assert (payout.count, payout.won, payout.top_ups) == (2, 50_000, 1)
    assert rows[("gift", "EXTEND")].reversed == 1
    assert rows[("gift", "REVERSAL")].hours == -120    # reversals count against the row sums
    assert ("melon", "EXTEND") in rows and all(r.service != "x" for r in rows.values())


def test_reviews_notices_and_dead_letters():
    rep = build()
    assert dict(rep.reviews_by_reason) == {"LARGE_BUSINESS_LOSS": 1, "FREE_SERVICE": 1}
    assert dict(rep.notices_by_kind) == {"REMEDY_ISSUED": 2, "REPORT_IN_REVIEW": 1}
    groups = {(g.source_topic, g.stage): g for g in rep.dead_letters}
    assert groups[("damage.reports.v1", "DECODE")].count == 2     # the repeated offset counts once
    assert groups[("damage.reports.v1", "DECODE")].errors == ("DecodeError: bad magic",
                                                             "DecodeError: corrupt Avro body")
    assert groups[("entitlement.states.v1", "VALIDATE")].count == 1


def test_timing_from_the_first_closed_record_to_the_last_remedy():
    tm = build().timing
    assert tm.closed_at == CLOSED_TS
    assert tm.close_to_last_remedy_s == pytest.approx(80.0)
    assert tm.remedies_in_span == 8 and tm.remedies_per_second == pytest.approx(0.1)


def test_timing_without_a_closed_revision_is_none():
    tm = build(windows=[(window(revision=1, status=IncidentStatus.OPEN), 5)]).timing
    assert tm.closed_at is None and tm.close_to_last_remedy_s is None and tm.remedies_per_second is None


def test_unknown_incident():
    with pytest.raises(UnknownIncident, match="INC-NOPE"):
        aggregate("INC-NOPE", [(window(), 1)], [], [], [], [])


def test_outcomes_cover_the_three_input_topics():
    outcomes = dict(build().outcomes)
    assert list(outcomes) == ["outage.windows.v1", "entitlement.states.v1", "damage.reports.v1"]
    assert dict(outcomes["entitlement.states.v1"]) == {"decided": 7, "stale": 1}


def test_text_layout():
    text = render_text(build())
    for heading in ("Incident INC-20221015-PANGYO", "Remedies by service and action", "Money and time",
                    "Reviews", "Dead letters", "Timing, event time", "Timing, pipeline time"):
        assert heading in text
    assert "1,225,000" in text and "2,160" in text and "80.0 s" in text
    money = {line.split("  ")[1].strip(): line.split()[-1] for line in text.splitlines()
             if line.startswith("  won ") or line.startswith("  hours ")}
    assert money["won credited"] == "1,225,000" and money["won paid out"] == "50,000"
    # the table's numeric columns are right-aligned: every row ends at the same column
    lines = text.split("Remedies by service and action\n")[1].split("\n\n")[0].splitlines()
    table = [line for line in lines if not line.startswith("  (")]
    assert len({len(line) for line in table}) == 1, table
    assert table[-1].split()[:2] == ["total", "8"]


def test_json_is_plain():
    doc = json.loads(json.dumps(to_json(build())))
    assert doc["totals"]["won_credited"] == 1_225_000
    assert doc["reviews_by_reason"] == {"FREE_SERVICE": 1, "LARGE_BUSINESS_LOSS": 1}


class _Strict(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.add(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def test_html_is_well_formed_self_contained_and_has_charts():
    page = render_html(build())
    parser = _Strict()
    parser.feed(page)
    parser.close()
    assert parser.stack == []
    assert {"svg", "table", "style"} <= parser.tags
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page and "1,225,000" in page


def test_html_renders_with_nothing_to_show():
    rep = build(remedies=[], reviews=[], notices=[], dead_letters=[], outcomes={})
    parser = _Strict()
    parser.feed(render_html(rep))
    assert parser.stack == []


def test_no_personal_data_or_raw_bytes_in_any_output():
    rep = build()
    for out in (render_text(rep), render_html(rep), json.dumps(to_json(rep))):
        for secret in (SECRET, "someone@example.com", "010-1234-5678", "주문 누락", "RAW-POISON-BYTES"):
            assert secret not in out


def test_review_cases_are_decoded_without_their_personal_fields():
    from streams.wire.codec import Codec
    from streams.report.collect import review_codec
    from streams.settings import ROOT
    codec = Codec.from_dir(ROOT / "schemas")
    wire = codec.encode_obj("review_case", review("v9", ReviewReason.OTHER))
    value = review_codec(codec).decode("review_case", wire)
    assert value["review_id"] == "v9" and value["reason"] == "OTHER"
    assert not {"title", "body", "contact_email", "contact_phone"} & set(value)
    assert SECRET not in repr(value)


def test_averages_are_per_case_not_per_remedy_id():
    per = {c.action: c for c in build().per_case}
    payout = per["PAYOUT"]                   # 30,000 + a 20,000 top-up: one case of 50,000
    assert (payout.cases, payout.remedies, payout.won, payout.average) == (1, 2, 50_000, 50_000)
    assert per["CREDIT"].average == 1_225_000
    text = render_text(build())
    row = next(line for line in text.split("Money per case")[1].splitlines() if line.strip().startswith("PAYOUT"))
    assert row.split() == ["PAYOUT", "1", "2", "50,000", "50,000"]
    assert to_json(build())["per_case"][1]["average"] == 50_000


def test_open_exposure_and_decided_reviews():
    x = build().exposure
    assert (x.open_cases, x.open_claimed_won, x.decided_cases, x.decided_won) == (2, 1_600_000, 0, 0)
    decided = remedy("z", Action.PAYOUT, service="gift", extend_hours=None, amount_krw=700_000, user_id="biz1",
                     subject_kind=SubjectKind.REPORT, subject_id="C-v1", decided_at=END + HOUR,
                     source=src(topic="ns1.remedy.review-decisions.v1"))
    tier = remedy("y", Action.PAYOUT, service="gift", extend_hours=None, amount_krw=10_000, user_id="biz1",
                  subject_kind=SubjectKind.REPORT, subject_id="C-v2", decided_at=END + HOUR)
    rep = build(remedies=[(r, 1) for r in REMEDIES + [decided, tier]])
    x = rep.exposure             # a tier payout on the case does not close it; a reviewer's decision does
    assert (x.open_cases, x.open_claimed_won, x.decided_cases, x.decided_won) == (1, 800_000, 1, 700_000)
    text = render_text(rep)
    assert "1 cases, claiming 800,000 won" in text and "1 cases, 700,000 won paid" in text


def test_extensions_are_valued_where_the_price_is_known():
    prices = {"E-a": (4_900, 30), "E-b": (0, 30)}        # E-b free, E-g1 unknown
    rep = build(prices=prices)
    ext = {e.service: e for e in rep.extensions}
    assert ext["melon"].hours == 144 and ext["melon"].priced_hours == 72 and ext["melon"].won == 490
    assert ext["gift"].priced_hours == 0 and ext["gift"].won == 0
    assert "kakaotalk" not in ext                         # a GRANT is not an extension
    line = next(x for x in render_text(rep).splitlines() if "won value of extensions" in x)
    assert line.split()[-1] == "490"


def test_times_in_the_incidents_zone_unless_utc_and_two_clocks_named():
    rep = build(timezone="Asia/Seoul")
    kst, utc = render_text(rep), render_text(rep, utc=True)
    start = rep.incident.started_at
    import datetime as dt
    local = dt.datetime.fromtimestamp(start / 1000, dt.timezone(dt.timedelta(hours=9))).strftime("%Y-%m-%d %H:%M")
    assert f"started   {local} KST" in kst and "times in  Asia/Seoul" in kst
    assert " KST" not in utc and " UTC" in utc
    assert "event time (when it happened" in kst and "pipeline time (when this pipeline wrote" in kst
    ev = rep.events
    assert ev.first_decided == END and ev.last_decided == END and ev.outage_ended == END + 7 * HOUR
    assert ev.last_after_end_h == pytest.approx(-7.0)
    page = render_html(rep)
    assert "times in Asia/Seoul" in page and "KST" in page and "times in UTC" in render_html(rep, utc=True)


def test_html_puts_extended_and_granted_hours_on_separate_charts():
    page = render_html(build())
    extended = page.split("Hours extended by service")[1].split("</section>")[0]
    granted = page.split("Hours granted by service")[1].split("</section>")[0]
    assert "2,160 h" in granted and "2,160" not in extended and "144 h" in extended


def test_a_denied_case_is_decided_not_open():
    """A DENY pays nothing; the REVIEW_DECIDED notice of the case's first decision closes it."""
    import dataclasses
    from processors.ids import decision_notice_id
    v1 = review("v1", ReviewReason.LARGE_BUSINESS_LOSS)
    v2 = review("v2", ReviewReason.FREE_SERVICE)
    denied = dataclasses.replace(notice(decision_notice_id("C-v2", 0), NoticeKind.REVIEW_DECIDED), user_id="biz1",
                                 report_id="r5", source=src(topic="ns1.remedy.review-decisions.v1"))
    base = [notice("n1", NoticeKind.REMEDY_ISSUED)]
    x = build(reviews=[v1, v2], notices=base).exposure
    assert (x.open_cases, x.decided_cases) == (2, 0)
    x = build(reviews=[v1, v2], notices=base + [denied]).exposure
    assert (x.open_cases, x.open_claimed_won, x.decided_cases, x.decided_won) == (1, 800_000, 1, 0)
    # a notice of another kind, or of another case's decision, answers nothing
    for stray in (dataclasses.replace(denied, kind=NoticeKind.REPORT_IN_REVIEW),
                  dataclasses.replace(denied, notice_id=decision_notice_id("C-v9", 0))):
        assert build(reviews=[v1, v2], notices=base + [stray]).exposure.open_cases == 2
