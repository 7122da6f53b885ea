"""Property tests: order-freeness, stable ids, monotone owing, non-negative money."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.factories import DAY, HOUR, INCIDENT, START, business, ent, reference, report, src, window

from processors.batch import evaluate
from processors.entitlements import decide_entitlement
from processors.model import (Action, BillingChannel, EntitlementKind, EntitlementStatus,
                              IncidentStatus, ReportCategory)
from processors.windows import IncidentHistory, overlaps, round_up

POLICY = reference()
SERVICES = ("emoticon-plus", "melon", "kakaopage", "gift", "shopping", "kakaotalk", "daum")
settings.register_profile("unit", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("unit")

offsets = st.integers(-10 * DAY, 10 * DAY)


@st.composite
def entitlements(draw, i: int = 0):
    start = START + draw(offsets)
    return ent(
        entitlement_id=f"E-{i}",
        user_id=f"U-{draw(st.integers(0, 3))}",
        service=draw(st.sampled_from(SERVICES)),
        kind=draw(st.sampled_from(list(EntitlementKind))),
        billing_channel=draw(st.sampled_from(list(BillingChannel))),
        status=draw(st.sampled_from(list(EntitlementStatus))),
        valid_from=start,
        valid_until=start + draw(st.integers(0, 40 * DAY)),
        price_krw=draw(st.integers(0, 100_000)),
        period_days=draw(st.integers(1, 365)),
        updated_at=START + draw(st.integers(0, 5)),
    )


@st.composite
def histories(draw):
    """Revisions 1..n of one incident; the last may be a retraction."""
    n = draw(st.integers(1, 4))
    ends = sorted(draw(st.lists(st.integers(0, 200 * HOUR), min_size=n, max_size=n)))
    revs = []
    for i, length in enumerate(ends, start=1):
        status = draw(st.sampled_from([IncidentStatus.OPEN, IncidentStatus.CLOSED]))
        revs.append(window(revision=i, status=status,
                           ended_at=None if status is IncidentStatus.OPEN else START + length,
                           published_at=START + length + i))
    if draw(st.booleans()):
        revs.append(window(revision=n + 1, status=IncidentStatus.RETRACTED, ended_at=None,
                           published_at=START + 300 * HOUR))
    return revs


@st.composite
def reports(draw, i: int = 0):
    base = business if draw(st.booleans()) else report
    return base(
        report_id=f"R-{i}",
        reporter_id=f"U-{draw(st.integers(0, 3))}",
        service=draw(st.sampled_from(SERVICES)),
        incident_id=draw(st.sampled_from([INCIDENT, None])),
        category=draw(st.sampled_from(list(ReportCategory))),
        claimed_loss_krw=draw(st.one_of(st.none(), st.integers(0, 1_000_000))),
        occurred_at=START + draw(st.integers(-DAY, 10 * DAY)),
        submitted_at=START + draw(st.integers(0, 40 * DAY)),
    )


@st.composite
def inputs(draw):
    ws = [(w, src(i, "w")) for i, w in enumerate(draw(histories()))]
    es = [(draw(entitlements(i % 5)), src(i, "e")) for i in range(draw(st.integers(0, 8)))]
    rs = [(draw(reports(i)), src(i, "r")) for i in range(draw(st.integers(0, 6)))]
    return ws, es, rs


@given(inputs(), st.randoms(use_true_random=False))
def test_batch_is_order_free(data, rnd):
    ws, es, rs = data
    expected = evaluate(POLICY, ws, es, rs)
    for lst in (ws, es, rs):
        rnd.shuffle(lst)
    assert evaluate(POLICY, ws, es, rs) == expected


@given(histories(), entitlements())
def test_ids_are_stable_and_unique(revs, e):
    history = IncidentHistory.of(revs)
    first = decide_entitlement(POLICY, history, e, src(1))
    again = decide_entitlement(POLICY, history, e, src(1))
    assert again == first
    ids = [r.remedy_id for r in first.remedies]
    assert len(ids) == len(set(ids))
    # Feeding the same revisions again (a replay) adds nothing new.
    replayed = history
    for w in revs:
        replayed = replayed.accept(w) or replayed
    assert decide_entitlement(POLICY, replayed, e, src(1)) == first


@given(entitlements(), st.integers(0, 300 * HOUR), st.integers(0, 300 * HOUR))
def test_lengthened_window_never_owes_less(e, a, b):
    short, long_ = sorted((a, b))
    def owed(length):
        d = decide_entitlement(POLICY, IncidentHistory.of([window(ended_at=START + length)]), e, src())
        return sum(r.extend_hours or 0 for r in d.remedies), sum(r.amount_krw or 0 for r in d.remedies)
    h1, w1 = owed(short)
    h2, w2 = owed(long_)
    assert h2 >= h1 and w2 >= w1
    # Through revisions too: the walk over (short, long) owes at least the long one alone.
    both = IncidentHistory.of([window(revision=1, ended_at=START + short),
                               window(revision=2, ended_at=START + long_)])
    d = decide_entitlement(POLICY, both, e, src())
    assert sum(r.extend_hours or 0 for r in d.remedies) >= h2


@given(inputs())
def test_money_and_hours_never_negative(data):
    out = evaluate(POLICY, *data)
    for r in out.remedies:
        assert (r.amount_krw or 0) >= 0 and (r.extend_hours or 0) >= 0
        if r.action is not Action.REVERSAL:
            assert (r.amount_krw or 0) + (r.extend_hours or 0) > 0
    assert len({n.notice_id for n in out.notices}) == len(out.notices)


@given(st.integers(0, 10**9), st.integers(1, 10**7))
def test_round_up(ms, unit):
    r = round_up(ms, unit)
    assert r % unit == 0 and ms <= r < ms + unit


@given(*(st.integers(-100, 100) for _ in range(4)))
def test_overlaps_is_symmetric_and_empty_never_overlaps(a, b, c, d):
    assert overlaps(a, b, c, d) == overlaps(c, d, a, b)
    assert not overlaps(a, a, c, d)
    if a < b and c < d:
        assert overlaps(a, b, c, d) == any(a <= t < b and c <= t < d for t in range(-100, 101))
