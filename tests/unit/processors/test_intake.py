"""Intake on event time, order-free (issue #11): a report's outcome does not depend on whether
it reached the pipeline before or after its incident's revisions.

Each scenario runs through a model of the live worker (tests/unit/processors/live.py) in more
than one arrival order and through the batch evaluator; the outputs must be the same records.
"""

from __future__ import annotations

from tests.factories import DAY, END, HOUR, INCIDENT, START, business, ent, reference, report, src, window
from tests.unit.processors.live import Live

from processors import ids
from processors.batch import evaluate
from processors.model import Action, IncidentStatus, NoticeKind, Outcome, OutageWindow, ReportCategory
from processors.reports import triage_report
from processors.windows import IncidentHistory

POLICY = reference()
OPEN, CLOSED, RETRACTED = IncidentStatus.OPEN, IncidentStatus.CLOSED, IncidentStatus.RETRACTED
OPENED = window(revision=1, status=OPEN, published_at=START + HOUR)
BUSINESS_END = END + 28 * DAY   # a business report's intake end for a close at END


def run(*records, entitlements=()):
    """Feed entitlements, then windows and reports in the given order, to the live model.
    Returns it with the arrivals (each record with its source), for the oracle."""
    offsets = {"w": 0, "r": 0}   # per topic, as Kafka numbers them: the same in every order
    arrivals = []
    for rec in records:
        topic = "w" if isinstance(rec, OutageWindow) else "r"
        arrivals.append((rec, src(offsets[topic], topic)))
        offsets[topic] += 1
    ents = [(e, src(100 + i, "e")) for i, e in enumerate(entitlements)]
    return Live(POLICY).feed(ents).feed(arrivals), (arrivals, ents)


def oracle(ran):
    """The batch evaluator's outputs for the same records, in the live model's listing."""
    _, (arrivals, ents) = ran
    ws = [(r, s) for r, s in arrivals if isinstance(r, OutageWindow)]
    rs = [(r, s) for r, s in arrivals if not isinstance(r, OutageWindow)]
    out = evaluate(POLICY, ws, ents, rs)
    return out.remedies, out.reviews, out.notices


def kinds(decision):
    return [n.kind for n in decision.notices]


# --------------------------------------------------------------------------- the case

def test_late_business_report_seen_while_open_is_rejected_at_the_close_never_paid():
    """The close is published after the report (a backdated close): by event time the report
    was submitted while the incident was open, so in both orders it gets a receipt and, at the
    close, the deadline rejection. Before issue #11 the first order paid it."""
    closed = window(revision=2, published_at=BUSINESS_END + 2 * DAY)
    late = business(submitted_at=BUSINESS_END + DAY, claimed_loss_krw=400_000)
    report_first = run(OPENED, late, closed)
    close_first = run(OPENED, closed, late)
    for live, _ in (report_first, close_first):
        d = live.last("R-1")
        assert not live.remedies and not d.remedies
        assert kinds(d) == [NoticeKind.REPORT_RECEIVED, NoticeKind.REPORT_REJECTED]
        assert "intake period" in d.notices[1].message
        assert d.notices[1].notice_id == ids.notice_id("report", "R-1")
        assert d.outcome is Outcome.PENDING   # rejected for now: a lengthening may still admit it
    # while only the open revision was known, the report was acknowledged and nothing decided
    first = report_first[0].decisions[0][1]
    assert kinds(first) == [NoticeKind.REPORT_RECEIVED] and first.outcome is Outcome.PENDING
    assert report_first[0].outputs() == close_first[0].outputs()
    assert close_first[0].outputs() == oracle(close_first)


def test_late_business_report_ahead_of_a_lagging_close_is_rejected_never_paid():
    """The close was published before the report was submitted but reached the pipeline after
    it (a lagging window feed). The pipeline could only acknowledge the report; at the close it
    is rejected with the same notice as when the close came first. The receipt is the one trace
    of the lag: it was true when sent."""
    closed = window(revision=2)   # published an hour after the end
    late = business(submitted_at=BUSINESS_END + DAY, claimed_loss_krw=400_000)
    lagging, _ = run(OPENED, late, closed)
    in_order, _ = run(OPENED, closed, late)
    for live in (lagging, in_order):
        assert not live.remedies and live.last("R-1").outcome is Outcome.PENDING
    rejection = ids.notice_id("report", "R-1")
    assert lagging.notices[rejection] == in_order.notices[rejection]
    assert in_order.notices[rejection].kind is NoticeKind.REPORT_REJECTED
    assert set(lagging.notices) - set(in_order.notices) == {ids.notice_id("report-received", "R-1")}
    assert kinds(in_order.last("R-1")) == [NoticeKind.REPORT_REJECTED]


def test_report_within_intake_while_open_is_acknowledged_then_paid_at_the_close():
    closed = window(revision=2)
    on_time = business(submitted_at=START + 2 * DAY, claimed_loss_krw=400_000)
    report_first, close_first = run(OPENED, on_time, closed), run(OPENED, closed, on_time)
    live = report_first[0]
    first = live.decisions[0][1]
    assert first.outcome is Outcome.PENDING and not first.remedies
    (receipt,) = first.notices
    assert receipt.kind is NoticeKind.REPORT_RECEIVED
    assert receipt.notice_id == ids.notice_id("report-received", "R-1")
    assert "still ongoing" in receipt.message and receipt.decided_at == on_time.submitted_at
    d = live.last("R-1")
    assert d.outcome is Outcome.PAID
    (payout,) = d.remedies
    assert (payout.action, payout.amount_krw) == (Action.PAYOUT, 50_000)
    assert payout.decided_at == closed.published_at   # decided at the close, not at receipt
    assert kinds(d) == [NoticeKind.REPORT_RECEIVED, NoticeKind.REPORT_COVERED]
    assert live.outputs() == close_first[0].outputs() == oracle(close_first)


def test_a_lengthening_revision_admits_a_report_rejected_as_late():
    """Revision 2 closes the window two days early; the report misses that intake. Revision 3,
    published after the report, moves the end (and so the intake end) out: it is paid then,
    with a notice that says why, exactly as when revision 3 came before the report."""
    short = window(revision=2, ended_at=END - 2 * DAY, published_at=END - 2 * DAY + HOUR)
    longer = window(revision=3, ended_at=END, published_at=END + 27 * DAY + 12 * HOUR)
    r = business(submitted_at=END + 27 * DAY, claimed_loss_krw=100_000)   # after END - 2d + 28d
    before, after = run(OPENED, short, r, longer), run(OPENED, short, longer, r)
    rejected_for_now = before[0].decisions[0][1]
    assert rejected_for_now.outcome is Outcome.PENDING and not rejected_for_now.remedies
    assert kinds(rejected_for_now) == [NoticeKind.REPORT_REJECTED]
    for live, _ in (before, after):
        d = live.last("R-1")
        assert d.outcome is Outcome.PAID and d.remedies[0].amount_krw == 30_000
        assert d.remedies[0].decided_at == longer.published_at
        rejected, paid = d.notices
        assert rejected.notice_id == ids.notice_id("report", "R-1") and "intake period" in rejected.message
        assert paid.notice_id == ids.notice_id("report-reconsidered", "R-1")
        assert paid.kind is NoticeKind.REPORT_COVERED and "revised" in paid.message
        assert paid.remedy_ids == (d.remedies[0].remedy_id,) and "30,000 won" in paid.message
    assert before[0].outputs() == after[0].outputs() == oracle(after)


def test_lengthening_reaches_top_ups_in_the_case_too():
    """Two reports of one business, both late for revision 2: admitted together by revision 3,
    in submission order, so the second tops up the first as it would with revision 3 known."""
    short = window(revision=2, ended_at=END - 2 * DAY, published_at=END - 2 * DAY + HOUR)
    longer = window(revision=3, ended_at=END, published_at=END + 27 * DAY + 12 * HOUR)
    a = business(report_id="R-1", submitted_at=END + 27 * DAY, claimed_loss_krw=100_000)
    b = business(report_id="R-2", submitted_at=END + 27 * DAY + HOUR, claimed_loss_krw=400_000)
    before, after = run(OPENED, short, a, b, longer), run(OPENED, short, longer, a, b)
    first, top_up = sorted(before[0].remedies.values(), key=lambda x: x.supersedes is not None)
    assert (first.amount_krw, top_up.amount_krw, top_up.supersedes) == (30_000, 20_000, first.remedy_id)
    assert before[0].outputs() == after[0].outputs() == oracle(after)


def test_a_shortening_never_takes_back_and_judges_only_reports_submitted_after_it():
    shorter = window(revision=3, ended_at=END - 3 * DAY, published_at=END + 26 * DAY)
    closed = window(revision=2)
    early = business(report_id="R-1", reporter_id="U-1", submitted_at=END + 25 * DAY + 12 * HOUR)
    after_it = business(report_id="R-2", reporter_id="U-2", submitted_at=END + 27 * DAY)
    one = run(OPENED, closed, early, shorter, after_it)
    two = run(OPENED, closed, shorter, early, after_it)
    for live, _ in (one, two):
        assert live.last("R-1").outcome is Outcome.PAID    # revision 2 was in force: inside
        assert live.last("R-2").outcome is Outcome.PENDING  # revision 3 was: outside, for now
        assert kinds(live.last("R-2")) == [NoticeKind.REPORT_REJECTED]
    assert one[0].outputs() == two[0].outputs() == oracle(two)


def test_re_opened_incident_decides_again_at_its_next_close():
    closed = window(revision=2)
    reopened = window(revision=3, status=OPEN, published_at=END + 29 * DAY)
    closed_again = window(revision=4, ended_at=END + 5 * DAY, published_at=END + 30 * DAY)
    late = business(report_id="R-1", reporter_id="U-1", submitted_at=BUSINESS_END + HOUR)
    while_reopened = business(report_id="R-2", reporter_id="U-2", submitted_at=END + 29 * DAY + HOUR)
    orders = [run(OPENED, closed, late, reopened, while_reopened, closed_again),
              run(OPENED, closed, reopened, closed_again, late, while_reopened)]
    for live, _ in orders:
        assert [n.notice_id for n in live.last("R-1").notices][:2] == [
            ids.notice_id("report", "R-1"), ids.notice_id("report-reconsidered", "R-1")]
        assert kinds(live.last("R-2"))[0] is NoticeKind.REPORT_RECEIVED
        assert {x.amount_krw for x in live.remedies.values()} == {30_000}
        assert len(live.remedies) == 2
    assert orders[0][0].outputs() == orders[1][0].outputs() == oracle(orders[1])


# --------------------------------------------------------------------------- retraction

def test_retraction_of_an_open_incident_rejects_the_reports_it_acknowledged():
    retracted = window(revision=2, status=RETRACTED, ended_at=None, published_at=START + 3 * DAY)
    r = business(submitted_at=START + 2 * DAY)
    one, two = run(OPENED, r, retracted), run(OPENED, retracted, r)
    for live, _ in (one, two):
        d = live.last("R-1")
        assert d.outcome is Outcome.REJECTED and not live.remedies
        assert kinds(d) == [NoticeKind.REPORT_RECEIVED, NoticeKind.REPORT_REJECTED]
        assert "false alarm" in d.notices[1].message
    assert one[0].outputs() == two[0].outputs() == oracle(two)


def test_retraction_keeps_what_a_close_admitted_and_ends_a_late_report_quietly():
    retracted = window(revision=3, status=RETRACTED, ended_at=None, published_at=BUSINESS_END + 3 * DAY)
    closed = window(revision=2)
    paid = business(report_id="R-1", reporter_id="U-1", submitted_at=END + 2 * DAY)
    late = business(report_id="R-2", reporter_id="U-2", submitted_at=BUSINESS_END + DAY)
    one = run(OPENED, closed, paid, late, retracted)
    two = run(OPENED, closed, retracted, paid, late)
    for live, _ in (one, two):
        assert live.last("R-1").outcome is Outcome.PAID and len(live.remedies) == 1
        d = live.last("R-2")
        assert d.outcome is Outcome.REJECTED and kinds(d) == [NoticeKind.REPORT_REJECTED]
        assert "intake period" in d.notices[0].message   # told once; the retraction adds nothing
    assert one[0].outputs() == two[0].outputs() == oracle(two)


# --------------------------------------------------------------------------- the rest

def test_too_early_is_final_even_if_a_later_revision_moves_the_start():
    late_start = window(revision=1, started_at=START + DAY)
    earlier = window(revision=2, published_at=END + 2 * HOUR)
    r = business(submitted_at=START + 2 * HOUR)
    one, two = run(late_start, r, earlier), run(late_start, earlier, r)
    for live, _ in (one, two):
        d = live.last("R-1")
        assert d.outcome is Outcome.REJECTED and "before the incident began" in d.notices[0].message
    assert one[0].outputs() == two[0].outputs() == oracle(two)


def test_paid_service_report_waits_for_the_close_so_coverage_is_known():
    """While open no entitlement remedy exists yet; deciding then sent covered users to review."""
    e = ent(user_id="U-1", service="emoticon-plus")
    r = report(category=ReportCategory.PAID_SERVICE, service="emoticon-plus", submitted_at=START + DAY)
    closed = window(revision=2)
    one = run(OPENED, r, closed, entitlements=[e])
    two = run(OPENED, closed, r, entitlements=[e])
    for live, _ in (one, two):
        d = live.last("R-1")
        assert d.outcome is Outcome.COVERED and not live.reviews
    assert one[0].outputs() == two[0].outputs() == oracle(two)


def test_report_matched_by_time_keeps_its_receipt_when_the_close_moves_the_window_away():
    closed = window(revision=2)   # [START, END), published END + 1h
    r = report(incident_id=None, occurred_at=None, submitted_at=END + 30 * 60_000)
    one, two = run(OPENED, r, closed), run(OPENED, closed, r)
    for live, _ in (one, two):
        d = live.last("R-1")
        assert d.outcome is Outcome.PENDING and kinds(d) == [NoticeKind.REPORT_RECEIVED]
    assert one[0].outputs() == two[0].outputs() == oracle(two)


def test_asking_again_gives_the_same_answer_with_the_same_ids():
    history = IncidentHistory.of([OPENED])
    r = business(submitted_at=START + DAY)
    first = triage_report(POLICY, {INCIDENT: history}, r, src(3), None, [])
    again = triage_report(POLICY, {INCIDENT: history}, r, src(3), None, [])
    assert first == again and first[1] is None
    assert [n.notice_id for n in first[0].notices] == [ids.notice_id("report-received", "R-1")]
