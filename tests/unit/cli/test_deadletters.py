"""How dead letters are shown: keys as text when UTF-8, values decoded and redacted, selectors."""
import json

import pytest

from processors.model import to_dict
from streams.cli.deadletters import Letter, choose, parse_since, preview, redact, show_key
from streams.errors import CommandError
from streams.wire.jsonio import JsonRecords
from streams.settings import ROOT
from streams.wire.codec import Codec
from tests import samples

CODEC = Codec.from_dir(ROOT / "schemas")


def _letter(value, topic="damage.reports.v1", key=b"k", offset=5) -> Letter:
    return Letter(topic, f"ns.{topic}", 1, offset, key, value, "DECODE", "DecodeError: x", 0)


def test_keys_print_as_text_when_they_are_utf8():
    assert show_key("사용자-1".encode()) == "사용자-1"
    assert show_key(None) == "-"
    assert show_key(b"\xff\x00k") == "base64:/wBr"
    assert show_key(b"a\x00b").startswith("base64:")      # UTF-8 but not printable


def test_json_values_are_previewed_without_personal_fields():
    records = JsonRecords(CODEC)
    v = json.dumps({"report_id": "r1", "contact_email": "leak@example.com", "body": "my story",
                    "nested": [{"contact_phone": "010"}]}).encode()
    text = preview(_letter(v), records)
    assert text.startswith("json ") and "r1" in text
    assert "leak@example.com" not in text and "my story" not in text and "010" not in text


def test_undecodable_values_are_described_not_printed():
    assert preview(_letter(b"secret plain text"), JsonRecords(CODEC)).startswith("text, 17 bytes")
    assert "secret" not in preview(_letter(b"secret plain text"), JsonRecords(CODEC))
    assert preview(_letter(b"\x00\x01\xff"), JsonRecords(CODEC)).startswith("binary, 3 bytes")
    assert preview(_letter(None), JsonRecords(CODEC)) == "(no value)"


def test_long_previews_are_cut():
    v = json.dumps({"report_id": "r" * 500}).encode()
    assert len(preview(_letter(v), JsonRecords(CODEC), width=40)) <= len("json ") + 40


def test_redact_keeps_null_personal_fields_null():
    assert redact({"title": None, "body": "x"}) == {"title": None, "body": "<redacted>"}


def test_selection_needs_names_or_all():
    letters = [_letter(b"x", offset=5), _letter(b"y", offset=6)]
    assert choose(letters, [], True) == letters
    assert choose(letters, ["damage.reports.v1:1:6", "damage.reports.v1:1:6"], False) == [letters[1]]
    with pytest.raises(CommandError, match="--all"):
        choose(letters, [], False)
    with pytest.raises(CommandError, match="no dead letter for damage.reports.v1:1:7"):
        choose(letters, ["damage.reports.v1:1:7"], False)
    with pytest.raises(CommandError, match="TOPIC:PARTITION:OFFSET"):
        choose(letters, ["1:7"], False)


def test_since_accepts_relative_iso_and_millis():
    now = 10 * 86_400_000
    assert parse_since("2h", now) == now - 7_200_000
    assert parse_since("3d", now) == now - 3 * 86_400_000
    assert parse_since("1970-01-01T09:00:00+09:00", now) == 0
    assert parse_since("1234", now) == 1234
    assert parse_since(None, now) is None


def test_avro_values_are_decoded_with_the_source_topics_schema_and_redacted():
    records = JsonRecords(CODEC)
    value = CODEC.encode("damage_report", records.to_avro("damage_report", samples.sample("damage_report")))
    text = preview(_letter(value), records, width=1000)
    assert text.startswith("avro ") and '"report_id": "r-1"' in text and '"claimed_loss_krw": 420000' in text
    assert "owner@example.com" not in text and "010-0000-0000" not in text and "주문 알림" not in text
    other = preview(_letter(value, topic="entitlement.states.v1"), records, width=1000)
    assert other.startswith("avro (damage_report, not entitlement_state) {")    # what it really is
    assert "owner@example.com" not in other


def test_filters_before_redrive_are_kept():
    from streams.cli.main import build_parser
    args = build_parser().parse_args(["deadletters", "--topic", "damage.reports.v1", "redrive", "--all"])
    assert args.topic == "damage.reports.v1" and args.all and args.func.__name__ == "redrive"
    args = build_parser().parse_args(["deadletters", "redrive", "--all", "--since", "2h"])
    assert args.since == "2h" and args.topic is None
    args = build_parser().parse_args(["deadletters", "--limit", "3"])
    assert args.func.__name__ == "list_letters" and args.limit == 3
