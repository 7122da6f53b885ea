"""`makegood publish` admits each line exactly as a worker does: same checks, same reasons.

The five cases of issue #12 passed publish and were then dead-lettered by the workers; each is
now refused by publish with the reason the worker's admission gives for the same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from processors.policy import load_policy
from streams.cli.io import input_topic, parse_lines
from streams.decide.admit import Admission, Rejection
from streams.errors import CommandError
from streams.wire.codec import Codec
from streams.wire.jsonio import JsonRecords
from tests.samples import sample

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def admission() -> Admission:
    return Admission(Codec.from_dir(ROOT / "schemas"), load_policy(str(ROOT / "deploy/policies/kakao-1015.yaml")))


def _lines(admission: Admission, topic: str, objs: list[dict]) -> list:
    return list(parse_lines(iter(json.dumps(o).encode() for o in objs), topic, JsonRecords(admission.codec),
                            admission))


BAD_STATES = {
    "epoch seconds read as millis": ({"valid_from": 1665814740}, "valid_from 1665814740 is outside "
                                     "[2000-01-01, 2100-01-01) (epoch seconds? timestamps are epoch milliseconds)"),
    "negative price": ({"price_krw": -4900}, "price_krw is negative: -4900"),
    "unknown service": ({"service": "kakaobank"}, "unknown service 'kakaobank'"),
    "zero period": ({"period_days": 0}, "period_days must be at least 1, got 0"),
    "valid_until before valid_from": ({"valid_until": sample("entitlement_state")["valid_from"] - 1},
                                      "valid_until is before valid_from"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_publish_refuses_what_the_worker_would_dead_letter_with_the_same_reason(admission: Admission,
                                                                                case: str) -> None:
    changes, reason = BAD_STATES[case]
    obj = dict(sample("entitlement_state"), **changes)
    (line,) = _lines(admission, "entitlement.states.v1", [obj])
    assert line.error == reason
    # the worker, given the same record as bytes, rejects it for the same reason
    value = admission.codec.encode("entitlement_state", obj)
    got = admission.check("entitlement_state", value, b"ent-1")
    assert isinstance(got, Rejection) and got.reason == reason


def test_accepted_lines_are_admitted_by_the_worker(admission: Admission) -> None:
    objs = [dict(sample("entitlement_state"), entitlement_id=f"ent-{n}") for n in range(3)]
    lines = _lines(admission, "entitlement.states.v1", objs)
    assert [ln.error for ln in lines] == [None] * 3
    for ln in lines:
        assert not isinstance(admission.check("entitlement_state", ln.value, ln.key), Rejection)


def test_window_and_report_validation_and_key(admission: Admission) -> None:
    bad_window = dict(sample("outage_window"), services=["melon", "melon"])
    bad_report = dict(sample("damage_report"), claimed_loss_krw=-1)
    assert _lines(admission, "outage.windows.v1", [bad_window])[0].error == "services lists a service more than once"
    assert _lines(admission, "damage.reports.v1", [bad_report])[0].error == "claimed_loss_krw is negative: -1"
    good = _lines(admission, "outage.windows.v1", [sample("outage_window")])[0]
    assert good.error is None and good.key == b"INC-20221015-PANGYO"


def test_line_numbers_count_blank_lines(admission: Admission) -> None:
    good = json.dumps(sample("entitlement_state")).encode()
    bad = json.dumps(dict(sample("entitlement_state"), period_days=0)).encode()
    lines = list(parse_lines(iter([good, b"", b"  ", bad]), "entitlement.states.v1",
                             JsonRecords(admission.codec), admission))
    assert [(ln.number, ln.error is None) for ln in lines] == [(1, True), (4, False)]


@pytest.mark.parametrize("topic", ["remedy.actions.v1", "remedy.deadletter.v1", "remedy.notices.v1",
                                   "remedy.reviews.v1"])
def test_output_topics_are_refused(topic: str) -> None:
    with pytest.raises(CommandError, match=f"^{topic} is written by the makegood workers"):
        input_topic(topic)


def test_inputs_are_accepted() -> None:
    assert input_topic("entitlement.states.v1") == "entitlement_state"
