"""One valid plain-Avro record per schema, for round-trip tests."""
from __future__ import annotations

T0 = 1665813600000  # 2022-10-15T06:00:00Z, ~15:00 KST: the fire
SRC = {"topic": "entitlement.states.v1", "partition": 3, "offset": 42}


def sample(name: str) -> dict:
    return {
        "outage_window": {"incident_id": "INC-20221015-PANGYO", "revision": 2, "status": "CLOSED",
                          "services": ["kakaotalk", "melon"], "started_at": T0,
                          "ended_at": T0 + 127 * 3_600_000, "site": "SK C&C Pangyo",
                          "published_at": T0 + 128 * 3_600_000},
        "entitlement_state": {"entitlement_id": "ent-1", "user_id": "u-1", "service": "emoticon-plus",
                              "kind": "SUBSCRIPTION", "billing_channel": "APP_STORE", "status": "ACTIVE",
                              "valid_from": T0 - 86_400_000, "valid_until": T0 + 29 * 86_400_000,
                              "price_krw": 4900, "period_days": 30, "updated_at": T0 - 86_400_000,
                              "locale": "ko-KR"},
        "damage_report": {"report_id": "r-1", "reporter_id": "u-9", "reporter_kind": "BUSINESS",
                          "business_id": "123-45-67890", "service": "kakaotalk",
                          "incident_id": None, "category": "BUSINESS_LOSS", "claimed_loss_krw": 420_000,
                          "occurred_at": T0 + 3_600_000, "title": "가게 주문 누락", "body": "주문 알림이 오지 않았습니다",
                          "contact_email": "owner@example.com", "contact_phone": "010-0000-0000",
                          "submitted_at": T0 + 200 * 3_600_000, "locale": None},
        "incident_approval": {"incident_id": "INC-20221015-PANGYO", "revision": 3, "approved_by": "sre-0042",
                              "approved_at": T0 + 200 * 3_600_000, "policy_version": "kakao-1015.1",
                              "remedies": 2012, "amount_krw": 100_640},
        "remedy_action": {"remedy_id": "6f1c1e9e-0000-5000-8000-000000000001",
                          "incident_id": "INC-20221015-PANGYO", "rule_id": "emoticon-plus-store",
                          "policy_version": "kakao-1015.v1", "action": "CREDIT", "user_id": "u-1",
                          "subject_kind": "ENTITLEMENT", "subject_id": "ent-1", "service": "emoticon-plus",
                          "extend_hours": None, "amount_krw": 490, "supersedes": None,
                          "decided_at": T0 + 128 * 3_600_000, "source": SRC},
        "review_case": {"review_id": "rv-1", "case_id": "c-1", "incident_id": "INC-20221015-PANGYO",
                        "reporter_id": "u-9", "reporter_kind": "BUSINESS", "business_id": "123-45-67890",
                        "service": "kakaotalk", "category": "BUSINESS_LOSS", "claimed_loss_krw": 900_000,
                        "reason": "LARGE_BUSINESS_LOSS", "report_ids": ["r-1", "r-2"], "title": "t",
                        "body": "b", "contact_email": None, "contact_phone": None,
                        "policy_version": "kakao-1015.v1", "decided_at": T0, "source": SRC},
        "user_notice": {"notice_id": "n-1", "user_id": "u-1", "incident_id": "INC-20221015-PANGYO",
                        "kind": "REMEDY_ISSUED", "remedy_ids": ["6f1c1e9e-0000-5000-8000-000000000001"],
                        "report_id": None, "message": "Your subscription was credited 490 won.",
                        "policy_version": "kakao-1015.v1", "decided_at": T0, "source": SRC, "locale": "en"},
        "review_decision": {"case_id": "c-1", "review_id": "rv-1", "reporter_id": "u-9", "verdict": "APPROVE",
                            "amount_krw": 250_000, "reviewer_id": "reviewer-7", "note": "영수증 확인",
                            "decided_at": T0 + 400 * 3_600_000},
        "dead_letter": {"source_topic": "damage.reports.v1", "source_partition": 0, "source_offset": 7,
                        "key": b"u-9", "value": b"\x00\xffnot avro", "stage": "DECODE",
                        "error_class": "DecodeError", "error_message": "bad magic", "failed_at": T0},
    }[name]
