"""on_retract: reverse, with a second policy built from the reference one."""

from __future__ import annotations

import yaml
from tests.factories import DAY, END, HOUR, INCIDENT, REFERENCE, START, ent, src, window

from processors.entitlements import decide_entitlement
from processors.ids import remedy_id
from processors.model import Action, BillingChannel, EntitlementKind, IncidentStatus, NoticeKind
from processors.policy import parse_policy
from processors.windows import IncidentHistory


def reversing_policy():
    data = yaml.safe_load(REFERENCE.read_text())
    data["on_retract"] = "reverse"
    data["version"] = "kakao-1015.reverse-test"
    return parse_policy(data, "reverse-test.yaml")


def test_reverse_issues_a_reversal_per_remedy_in_walk_order():
    policy = reversing_policy()
    voucher = ent(service="gift", kind=EntitlementKind.VOUCHER, billing_channel=BillingChannel.NONE,
                  valid_until=START + HOUR)
    history = IncidentHistory.of([
        window(revision=1, ended_at=START + 20 * HOUR),
        window(revision=2, ended_at=END),
        window(revision=3, status=IncidentStatus.RETRACTED, published_at=END + 3 * DAY),
        window(revision=4, ended_at=END + DAY),  # after retraction: the walk has ended
    ])
    d = decide_entitlement(policy, history, voucher, src())
    seq0, topup, rev0, rev1 = d.remedies
    assert (rev0.action, rev0.extend_hours, rev0.supersedes) == (Action.REVERSAL, 24, seq0.remedy_id)
    assert (rev1.action, rev1.extend_hours, rev1.supersedes) == (Action.REVERSAL, 120, topup.remedy_id)
    assert rev0.remedy_id == remedy_id(INCIDENT, "gift-shopping-expired", "ENT-1", 2)
    assert rev1.remedy_id == remedy_id(INCIDENT, "gift-shopping-expired", "ENT-1", 3)
    assert rev0.decided_at == END + 3 * DAY
    # one digest per revision: the extension, the top-up, both reversals together
    assert [n.kind for n in d.notices] == [NoticeKind.REMEDY_ISSUED] * 2 + [NoticeKind.REMEDY_REVERSED]
    assert d.notices[2].remedy_ids == (rev0.remedy_id, rev1.remedy_id)


def test_reversal_of_a_credit_carries_the_amount():
    policy = reversing_policy()
    e = ent(billing_channel=BillingChannel.APP_STORE)
    history = IncidentHistory.of([window(revision=1),
                                  window(revision=2, status=IncidentStatus.RETRACTED)])
    credit, reversal = decide_entitlement(policy, history, e, src()).remedies
    assert credit.amount_krw == 490
    assert (reversal.amount_krw, reversal.extend_hours) == (490, None)
    assert reversal.supersedes == credit.remedy_id
