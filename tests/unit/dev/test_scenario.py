"""The reference incident generator: reproducible, and shaped like the Pangyo fire."""
from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from processors import validate
from processors.errors import MakegoodError
from processors.policy import load_policy
from streams.wire.codec import Codec
from streams.dev.scenario import (BUSINESS_CLOSES, ENDED_FINAL, ENDED_FIRST, INCIDENT, INTAKE_LAST,
                              INTAKE_OPENS, STARTED, Scenario, _ms, generate)
from streams.settings import ROOT
from streams.kafka.topics import TOPIC_SCHEMAS

HOUR = 3_600_000


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_dir(ROOT / "schemas")


@pytest.fixture(scope="module")
def scen(codec: Codec) -> Scenario:
    return generate(codec=codec)


def _bytes(s: Scenario, codec: Codec) -> list[bytes]:
    out = []
    for name, pairs in (("outage_window", s.windows), ("entitlement_state", s.entitlements),
                        ("damage_report", s.reports)):
        out += [k.encode() + b"\0" + codec.encode(name, v) for k, v in pairs]
    return out + [t.encode() + k + v for t, k, v in s.malformed]


def ents(s: Scenario) -> list[dict]:
    return [v for _, v in s.entitlements if v is not None]


def reps(s: Scenario) -> list[dict]:
    return [v for _, v in s.reports if v is not None]


# ----------------------------------------------------------------------------- reproducibility

def test_same_seed_and_scale_give_identical_bytes(codec: Codec) -> None:
    a, b = generate(7, 0.5, codec), generate(7, 0.5, codec)
    assert _bytes(a, codec) == _bytes(b, codec)
    assert a.summary() == b.summary()


def test_another_seed_gives_another_incident(codec: Codec) -> None:
    assert _bytes(generate(7, 0.5, codec), codec) != _bytes(generate(8, 0.5, codec), codec)


def test_default_codec_matches(scen: Scenario, codec: Codec) -> None:
    assert _bytes(generate(), codec) == _bytes(scen, codec)


def test_bad_scale_is_a_makegood_error() -> None:
    with pytest.raises(MakegoodError, match="scale"):
        generate(scale=0)


# ----------------------------------------------------------------------------- sizes

def test_counts_at_scale_one(scen: Scenario) -> None:
    s = scen.summary()
    assert s["entitlement_ids"] == 3000 and 3000 < s["entitlements"] < 3150  # some second states
    assert s["reports"] == 1500 and s["windows"] == 3 and 8 <= s["malformed"] <= 12


def test_scale_multiplies(codec: Codec) -> None:
    s = generate(scale=10, codec=codec).summary()
    assert s["entitlement_ids"] == 30_000 and s["reports"] == 15_000


def test_every_record_fits_its_schema_and_passes_validation(scen: Scenario, codec: Codec) -> None:
    policy = load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml"))
    checks = [("outage_window", scen.windows, validate.validate_window),
              ("entitlement_state", scen.entitlements, validate.validate_entitlement),
              ("damage_report", scen.reports, validate.validate_report)]
    for name, pairs, check in checks:
        for _, value in pairs:
            check(codec.decode_obj(name, codec.encode(name, value)), policy)


# ----------------------------------------------------------------------------- windows

def test_window_revisions(scen: Scenario) -> None:
    revs = [v for _, v in scen.windows]
    assert [k for k, _ in scen.windows] == [INCIDENT] * 3
    assert [(w["revision"], w["status"]) for w in revs] == [(1, "OPEN"), (2, "CLOSED"), (3, "CLOSED")]
    assert STARTED == _ms(2022, 10, 15, 15, 19)
    assert {w["started_at"] for w in revs} == {STARTED}
    assert [w["ended_at"] for w in revs] == [None, STARTED + 120 * HOUR, STARTED + 127 * HOUR]
    assert revs[0]["published_at"] - STARTED < HOUR
    assert revs[2]["published_at"] - revs[1]["published_at"] == 24 * HOUR
    assert revs[0]["site"] == "SK C&C Pangyo"
    assert revs[0]["services"] == ["kakaotalk", "emoticon-plus", "melon", "kakaopage", "kakaowebtoon",
                                   "kakaotv", "gift", "shopping", "daum", "kakao-t"]


# ----------------------------------------------------------------------------- entitlements

def test_emoticon_plus_mix(scen: Scenario) -> None:
    emo = [e for e in ents(scen) if e["service"] == "emoticon-plus"]
    assert {e["kind"] for e in emo} == {"SUBSCRIPTION"}
    channels = Counter(e["billing_channel"] for e in emo)
    assert set(channels) == {"WEB", "APP_STORE", "PLAY_STORE"}
    assert 0.48 < channels["WEB"] / len(emo) < 0.62
    assert {e["price_krw"] for e in emo} == {3_900, 4_900} and {e["period_days"] for e in emo} == {30}


def test_melon_mix_and_the_midnight_boundary(scen: Scenario) -> None:
    melon = [e for e in ents(scen) if e["service"] == "melon"]
    assert {e["billing_channel"] for e in melon} == {"WEB", "APP_STORE", "PLAY_STORE", "CARRIER"}
    assert all(7_590 <= e["price_krw"] <= 10_900 for e in melon)
    midnight = _ms(2022, 10, 16, 0, 0)
    active = [e["valid_from"] <= midnight < e["valid_until"] for e in melon]
    assert any(active) and not all(active)


def test_rentals_expire_before_inside_and_after(scen: Scenario) -> None:
    rentals = [e for e in ents(scen) if e["kind"] == "RENTAL"]
    assert {e["service"] for e in rentals} == {"kakaopage", "kakaowebtoon"}
    assert all(3 <= e["period_days"] <= 7 for e in rentals)
    ends = [e["valid_until"] for e in rentals]
    assert any(u < STARTED for u in ends)
    assert any(STARTED <= u < ENDED_FINAL for u in ends)
    assert any(u >= ENDED_FINAL for u in ends)


def test_vouchers_mostly_outlive_the_window(scen: Scenario) -> None:
    v = [e for e in ents(scen) if e["service"] in ("gift", "shopping")]
    assert {e["kind"] for e in v} == {"VOUCHER", "COUPON", "POINTS"}
    inside = [e for e in v if STARTED <= e["valid_until"] < ENDED_FINAL]
    assert 0.1 < len(inside) / len(v) < 0.4
    assert any(ENDED_FIRST <= e["valid_until"] < ENDED_FINAL for e in v)  # owed only by revision 3


def test_other_kinds_and_statuses(scen: Scenario) -> None:
    es = ents(scen)
    assert {e["kind"] for e in es if e["service"] == "kakaotv"} == {"VOD_PASS"}
    assert {e["kind"] for e in es if e["service"] == "kakaotalk"} == {"MEMBERSHIP"}
    statuses = Counter(e["status"] for e in es)
    assert set(statuses) == {"ACTIVE", "CANCELED", "EXPIRED", "REFUNDED", "REDEEMED"}
    assert statuses["ACTIVE"] / len(es) > 0.7
    assert any(e["valid_until"] <= STARTED for e in es)      # entirely before
    assert any(e["valid_from"] >= ENDED_FINAL for e in es)   # entirely after


def test_second_states_are_newer(scen: Scenario) -> None:
    by_id = defaultdict(list)
    for key, e in scen.entitlements:
        assert key == e["entitlement_id"]
        by_id[key].append(e)
    twice = [states for states in by_id.values() if len(states) > 1]
    assert twice
    for states in twice:  # in stream order, and strictly newer
        assert states[0]["updated_at"] < states[1]["updated_at"]
        assert states[0] != states[1]


# ----------------------------------------------------------------------------- reports

def test_report_mix(scen: Scenario) -> None:
    rs = reps(scen)
    kinds = Counter(r["reporter_kind"] for r in rs)
    assert 0.75 < kinds["INDIVIDUAL"] / len(rs) < 0.85
    paid = [r for r in rs if r["category"] == "PAID_SERVICE"]
    assert abs(len(paid) / len(rs) - 0.17) <= 0.03
    assert all(r["reporter_kind"] == "INDIVIDUAL" for r in paid)
    assert {r["category"] for r in rs if r["reporter_kind"] == "INDIVIDUAL"} == {
        "PAID_SERVICE", "FREE_SERVICE", "OTHER"}
    assert {r["category"] for r in rs if r["reporter_kind"] == "BUSINESS"} == {"BUSINESS_LOSS"}
    assert all((r["business_id"] is None) == (r["reporter_kind"] == "INDIVIDUAL") for r in rs)
    assert [k for k, _ in scen.reports] == [r["reporter_id"] for r in rs]
    assert len({r["report_id"] for r in rs}) == len(rs)


def test_paid_reporters_some_covered_some_not(scen: Scenario) -> None:
    holders = {(e["user_id"], e["service"]) for e in ents(scen)}
    paid = [r for r in reps(scen) if r["category"] == "PAID_SERVICE"]
    held = sum((r["reporter_id"], r["service"]) in holders for r in paid)
    assert 0 < held < len(paid)


def test_business_tiers_and_boundaries(scen: Scenario) -> None:
    s = scen.summary()["business_tiers"]
    assert set(s) == {"under_300k", "300k_to_500k", "over_500k", "unstated"}
    assert all(n > 0 for n in s.values())
    losses = Counter(r["claimed_loss_krw"] for r in reps(scen)
                     if r["reporter_kind"] == "BUSINESS" and r["submitted_at"] <= BUSINESS_CLOSES)
    assert losses[300_000] >= 1 and losses[500_000] >= 1 and losses[None] >= 1


def test_amendments(scen: Scenario) -> None:
    cases = defaultdict(list)
    for r in reps(scen):
        if r["business_id"] is not None:
            cases[(r["reporter_id"], r["business_id"])].append(r)
    amended = [rs for rs in cases.values() if len(rs) > 1]
    assert 0.03 < sum(len(rs) - 1 for rs in amended) / len(reps(scen)) < 0.07
    moves = set()
    for first, later in amended:
        assert later["submitted_at"] > first["submitted_at"] and later["report_id"] > first["report_id"]
        a, b = first["claimed_loss_krw"], later["claimed_loss_krw"]
        if a < 300_000 <= b <= 500_000:
            moves.add("tier up")
        if a <= 500_000 < b:
            moves.add("over 500k")
        if b < a:
            moves.add("lower")
    assert moves == {"tier up", "over 500k", "lower"}


def test_submission_times(scen: Scenario) -> None:
    rs = reps(scen)
    late = [r for r in rs if r["submitted_at"] > BUSINESS_CLOSES]
    assert 3 <= len(late) <= 10 and all(r["reporter_kind"] == "BUSINESS" for r in late)
    assert all(INTAKE_OPENS <= r["submitted_at"] <= INTAKE_LAST for r in rs if r not in late)
    assert INTAKE_OPENS >= _ms(2022, 10, 19, 0, 0) and INTAKE_LAST < _ms(2022, 11, 7, 0, 0)


def test_incident_or_service_and_time(scen: Scenario) -> None:
    rs = reps(scen)
    loose = [r for r in rs if r["incident_id"] is None]
    assert 0 < len(loose) < 0.3 * len(rs)
    assert all(r["occurred_at"] is not None and STARTED <= r["occurred_at"] < ENDED_FIRST for r in loose)
    assert {r["incident_id"] for r in rs} == {INCIDENT, None}


def test_contacts_are_fake(scen: Scenario) -> None:
    for r in reps(scen):
        assert r["contact_email"] is None or r["contact_email"].endswith("@example.com")
        assert r["contact_phone"] is None or r["contact_phone"].startswith("010-0000-")


# ----------------------------------------------------------------------------- poison

def test_malformed_records_fail_decoding_or_validation(scen: Scenario, codec: Codec) -> None:
    policy = load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml"))
    checks = {"outage_window": validate.validate_window, "entitlement_state": validate.validate_entitlement,
              "damage_report": validate.validate_report}
    reasons = []
    for topic, key, value in scen.malformed:
        assert isinstance(key, bytes) and isinstance(value, bytes)
        name = TOPIC_SCHEMAS[topic]
        with pytest.raises(MakegoodError) as info:
            checks[name](codec.decode_obj(name, value), policy)
        reasons.append(str(info.value))
    joined = "\n".join(reasons)
    for expected in ("bad magic", "corrupt Avro", "unknown service", "negative", "absurd",
                     "outside", "before started_at", "fingerprint", "was expected"):
        assert expected in joined
