"""The bench's JVM peer (bench/kstreams, a Kafka Streams application) decides as the reference does.

A peer that decides wrongly makes its timings worthless, so this runs the real JVM against the real
broker and registry on a small input that goes through both of its paths: states stored while the
incident is OPEN and then swept when it CLOSES, states arriving after it closed, newer copies of
stored states (nothing new is owed) and stale ones (ignored: newer updated_at wins). Every remedy it
commits must equal, id by id, what processors.batch.evaluate says the inputs earn, with no
duplicates, and each remedy has its notice.

It builds bench/kstreams with Maven the first time (offline when the local repository has the jars,
else from Maven Central) and starts one JVM: about a minute on a quiet 2-core machine, which is why
it is one test; `make test` runs it like the Avro interop test (tests/integration/interop).
"""
from __future__ import annotations

from dataclasses import replace

from bench import data
from bench.jvm_peer import NOTICES, Peer, _key, create_outputs, read_remedies
from processors.batch import evaluate
from processors.model import EntitlementState, Source, from_dict
from processors.policy import load_policy
from streams.kafka.topics import ENTITLEMENTS, OUTAGES
from streams.settings import Settings
from streams.wire.codec import Codec
from tests.integration.conftest import read_topic

N_FIRST = 600        # stored while OPEN, then swept
N_LATER = 300        # arrive after the CLOSED revision


def _publish(settings: Settings, codec: Codec, topic: str, schema: str, records: list, key) -> None:
    from bench.harness import publish
    publish(settings, topic, [key(r).encode() for r in records], [codec.encode_obj(schema, r) for r in records])


def test_kafka_streams_peer_matches_the_batch_evaluator(settings: Settings, codec: Codec, tmp_path) -> None:
    policy = load_policy(str(settings.policy_path))
    opened, closed = data.windows()
    profiles = data.profiles()
    states = [from_dict(EntitlementState, {**profiles[i % len(profiles)].template, "entitlement_id": f"e{i}",
                                           "user_id": f"u{i // 2}"}) for i in range(N_FIRST + N_LATER)]
    first, later = states[:N_FIRST], states[N_FIRST:]
    # a newer copy of a stored state owes nothing new; a stale one with another profile is ignored
    newer = [replace(s, updated_at=s.updated_at + 60_000) for s in first[:50]]
    stale = [from_dict(EntitlementState, {**profiles[(i + 7) % len(profiles)].template, "entitlement_id": s.entitlement_id,
                                          "user_id": s.user_id, "updated_at": s.updated_at - 60_000})
             for i, s in enumerate(first[50:100])]
    create_outputs(settings)
    _publish(settings, codec, OUTAGES, "outage_window", [opened], lambda w: w.incident_id)
    _publish(settings, codec, ENTITLEMENTS, "entitlement_state", first, lambda e: e.entitlement_id)

    peer = Peer(settings, N_FIRST, tmp_path / "state", tmp_path / "peer.log", timeout=600)
    try:
        peer.wait("processed", 600)
        _publish(settings, codec, OUTAGES, "outage_window", [closed], lambda w: w.incident_id)
        _publish(settings, codec, ENTITLEMENTS, "entitlement_state", later + newer + stale, lambda e: e.entitlement_id)

        # the oracle sees every input on the topics, with its real source
        windows = [(codec.decode_obj("outage_window", m.value()), Source(m.topic(), m.partition(), m.offset()))
                   for m in read_topic(settings, OUTAGES, expect=2)]
        ents = [(codec.decode_obj("entitlement_state", m.value()), Source(m.topic(), m.partition(), m.offset()))
                for m in read_topic(settings, ENTITLEMENTS, expect=N_FIRST + N_LATER + 100)]
        assert len(ents) == N_FIRST + N_LATER + 100
        expected = {r.remedy_id: _key(r) for r in evaluate(policy, windows, ents, []).remedies}
        assert len(expected) > N_FIRST // 4             # the profiles earn remedies of every rule

        values, reached = read_remedies(settings, len(expected), 300)
        assert reached is not None, f"{len(values)} of {len(expected)} remedies; log:\n{peer.log.read_text()[-3000:]}"
        got = [codec.decode_obj("remedy_action", v) for v in values]
        by_id = {r.remedy_id: _key(r) for r in got}
        assert len(got) == len(by_id), "a remedy was published twice"
        assert by_id == expected
        assert {r.rule_id for r in got} == {r.id for r in policy.rules}
        assert {r.action.name for r in got} >= {"EXTEND", "CREDIT", "GRANT"}

        notices, _ = read_remedies(settings, len(expected), 60, logical=NOTICES)
        remedy_ids = sorted(i for v in notices for i in codec.decode_obj("user_notice", v).remedy_ids)
        assert remedy_ids == sorted(expected)
    finally:
        exit_line = peer.stop()
    assert exit_line is not None and exit_line["invalid"] == 0
