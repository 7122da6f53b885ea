"""`makegood review list|decide` as a reviewer runs them, against a real worker, broker and Redis."""
from __future__ import annotations

import dataclasses
import time


from processors.model import NoticeKind
from tests.integration import kit
from tests.integration.cli.test_cli_io import run
from tests.integration.conftest import read_topic


def _review_payouts(settings, codec):
    return [r for r in kit.remedies_on_topic(settings, codec, idle=1.0) if r.rule_id == "business-payout-review"]


def _wait(predicate, workers, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        assert any(workers.alive()), workers.logs()
        time.sleep(1)
    raise AssertionError("timed out\n" + workers.logs())


def test_list_then_decide_pays_once_in_the_users_language(settings, codec, workers):
    workers.start(1)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows())
    big = [dataclasses.replace(r, locale="en") for r in kit.reports(40)
           if r.claimed_loss_krw and r.claimed_loss_krw > 500_000]
    kit.publish(settings, codec, "damage.reports.v1", big)
    cases = _wait(lambda: read_topic(settings, "remedy.reviews.v1", idle=1.0), workers)
    reviews = [codec.decode_obj("review_case", m.value()) for m in cases]

    listed = run(settings, "review", "list", kit.INCIDENT, "--reason", "LARGE_BUSINESS_LOSS")
    assert listed.returncode == 0, listed.stderr
    assert all(c.case_id in listed.stdout for c in reviews)
    assert "open" in listed.stdout and "@example.com" not in listed.stdout and "secret-body" not in listed.stdout
    contacts = run(settings, "review", "list", kit.INCIDENT, "--show-contact")
    assert "@example.com" in contacts.stdout

    case = reviews[0]
    ok = run(settings, "review", "decide", case.case_id, "--approve", "300,000", "--reviewer", "rv-kim",
             "--note", "receipts checked")
    assert ok.returncode == 0, ok.stderr
    (paid,) = _wait(lambda: _review_payouts(settings, codec), workers)
    assert (paid.amount_krw, paid.subject_id, paid.user_id) == (300_000, case.case_id, case.reporter_id)
    again = run(settings, "review", "decide", case.case_id, "--approve", "300000", "--reviewer", "rv-kim")
    more = run(settings, "review", "decide", case.case_id, "--approve", "350000", "--reviewer", "rv-lee")
    assert again.returncode == 0 and more.returncode == 0
    paid = _wait(lambda: (p := _review_payouts(settings, codec)) and len(p) >= 2 and p, workers)
    assert sorted(p.amount_krw for p in paid) == [50_000, 300_000]

    def decided_notices():
        return [n for n in (codec.decode_obj("user_notice", m.value())
                            for m in read_topic(settings, "remedy.notices.v1", idle=1.0))
                if n.kind is NoticeKind.REVIEW_DECIDED]
    told = _wait(lambda: (n := decided_notices()) and len(n) >= 3 and n, workers)
    assert all(n.locale == "en" and n.user_id == case.reporter_id for n in told)
    assert any("bringing your compensation to 350,000 won" in n.message for n in told)
    assert not any("receipts" in n.message for n in told)

    listed = run(settings, "review", "list", kit.INCIDENT, "--reason", "LARGE_BUSINESS_LOSS")
    assert "approved 350,000 won, paid 350,000 won" in listed.stdout

    unknown = run(settings, "review", "decide", "no-such-case", "--deny", "--reviewer", "rv-kim")
    assert unknown.returncode == 1 and "no case no-such-case" in unknown.stderr
    bad = run(settings, "review", "decide", case.case_id, "--approve", "-5", "--reviewer", "rv-kim")
    assert bad.returncode == 2 and "positive" in bad.stderr
