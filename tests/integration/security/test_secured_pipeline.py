"""The pipeline over SASL_SSL with the roles' ACLs enforced by the broker (deploy/acls.yaml):
workers as `makegood-worker`, inputs published as `makegood-publisher`, outputs read committed
as `billing`; and what each of them, or a misconfigured client, is refused."""
from __future__ import annotations

from dataclasses import replace

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka import Producer as ConfluentProducer

from processors.batch import evaluate
from streams.kafka.topics import ACTIONS, OUTAGES, REPORTS
from tests.integration import kit
from tests.integration.conftest import read_topic
from tests.integration.security.conftest import cli


def _rows(settings, codec, logical, schema, expect):
    return kit.as_rows(codec.decode_obj(schema, m.value()) for m in read_topic(settings, logical, expect=expect))


def test_workers_publishers_and_billing_run_the_pipeline_over_sasl_ssl(secured, codec, policy, tmp_path):
    workers = kit.Workers(secured.worker, tmp_path)
    try:
        workers.start(2)
        workers.wait_ready()
        pub = kit.Published()
        kit.publish(secured.publisher, codec, "entitlement.states.v1", kit.entitlements(300), pub)
        kit.publish(secured.publisher, codec, "outage.windows.v1", kit.windows(), pub)
        expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
        kit.settle(secured.billing, codec, len(expected.remedies), workers=workers)
        kit.publish(secured.publisher, codec, "damage.reports.v1", kit.reports(40), pub)
        expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
        msgs = kit.settle(secured.billing, codec, len(expected.remedies), workers=workers)
        got = kit.as_rows(codec.decode_obj("remedy_action", m.value()) for m in msgs)
        assert got == kit.as_rows(expected.remedies), workers.logs()[-3000:]
        assert {r.action.value for r in expected.remedies} >= {"EXTEND", "CREDIT", "PAYOUT"}
        assert _rows(secured.billing, codec, "remedy.notices.v1", "user_notice",
                     len(expected.notices)) == kit.as_rows(expected.notices)
        assert _rows(secured.billing, codec, "remedy.reviews.v1", "review_case",
                     len(expected.reviews)) == kit.as_rows(expected.reviews)
        logs = workers.logs()
        assert "(SASL_SSL SCRAM-SHA-512 as makegood-worker)" in logs
        assert secured.broker.security.password("makegood-worker") not in logs
    finally:
        workers.stop()


def _send(settings, logical: str) -> str | None:
    """None when the record was delivered, else the broker's refusal. A plain producer (not
    idempotent: billing, allowed no write at all, could not even get a producer id)."""
    reports: list = []
    p = ConfluentProducer(settings.producer_config(**{"acks": "all", "message.timeout.ms": 15000}))
    p.produce(settings.topic(logical), b"v", key=b"k", on_delivery=lambda err, _m: reports.append(err))
    assert p.flush(30) == 0
    return None if reports[0] is None else reports[0].name()


def test_a_publisher_writes_inputs_only_and_billing_writes_nothing(secured):
    assert _send(secured.publisher, OUTAGES) is None
    assert _send(secured.publisher, ACTIONS) == "TOPIC_AUTHORIZATION_FAILED"
    for logical in (ACTIONS, REPORTS):
        assert _send(secured.billing, logical) == "TOPIC_AUTHORIZATION_FAILED"


def _subscribe(settings, logical: str) -> str:
    """"assigned" once the group gave this consumer the topic's partitions, else the error."""
    assigned: list = []
    c = Consumer(settings.kafka_config(**{"group.id": settings.topic(f"billing.t-{logical}"),
                                          "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    try:
        c.subscribe([settings.topic(logical)], on_assign=lambda _c, parts: assigned.extend(parts))
        for _ in range(60):
            m = c.poll(0.5)
            if m is not None and m.error() is not None:
                return m.error().name()
            if assigned:
                return "assigned"
        return "nothing"
    finally:
        c.close()


def test_billing_may_read_remedies_but_not_inputs(secured):
    assert _subscribe(secured.billing, ACTIONS) == "assigned"
    assert _subscribe(secured.billing, OUTAGES) == "TOPIC_AUTHORIZATION_FAILED"
    # a publisher has no group and may not read remedies: refused either way
    assert _subscribe(secured.publisher, ACTIONS) in ("GROUP_AUTHORIZATION_FAILED", "TOPIC_AUTHORIZATION_FAILED")


def test_each_sasl_mechanism_connects_and_sees_only_what_its_role_may(secured):
    from streams.kafka.access import list_topics
    for user, mechanism, visible in (("billing", "PLAIN", 3), ("makegood-publisher", "SCRAM-SHA-256", 3),
                                     ("makegood-worker", "SCRAM-SHA-512", 11)):   # + approvals, review decisions
        s = secured.as_user(user, mechanism=mechanism)
        _, topics = list_topics(s)
        assert len({t for t in topics if t.startswith(s.namespace + ".")}) == visible, (user, topics)


def _one_line(done) -> str:
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode != 0 and len(lines) == 1, done.stdout + done.stderr
    return lines[0]


def test_a_wrong_password_is_refused_in_one_line_that_holds_no_secret(secured, tmp_path):
    wrong = tmp_path / "wrong.password"
    wrong.write_text("Wr0ng-but-still-a-secret\n")
    bad = replace(secured.worker, kafka_security=replace(secured.worker.kafka_security, sasl_password_file=wrong))
    real = secured.broker.security.password("makegood-worker")
    done = cli(bad, "topics", "create")
    line = _one_line(done)
    assert "refused SASL_SSL SCRAM-SHA-512 as makegood-worker: authentication failed" in line, line
    assert "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE" in line
    # a worker exits with the same line rather than waiting for a password to change
    worker = cli(bad, "worker", env={"MAKEGOOD_METRICS_PORT": "0"}, timeout=90)
    assert worker.returncode == 1 and "cannot start: Kafka at" in worker.stderr, worker.stderr[-2000:]
    for text in (done.stdout + done.stderr, worker.stdout + worker.stderr):
        assert "Wr0ng-but-still-a-secret" not in text and real not in text


def test_a_client_without_the_ca_cannot_connect(secured):
    no_ca = replace(secured.worker, kafka_security=replace(secured.worker.kafka_security, ssl_ca_file=None))
    line = _one_line(cli(no_ca, "topics", "create"))
    assert "TLS with Kafka at" in line and "certificate could not be verified" in line, line
    assert "MAKEGOOD_KAFKA_SSL_CA_FILE" in line


def test_topics_create_acls_as_a_non_admin_is_refused(secured):
    done = cli(secured.worker, "topics", "create", "--acls")
    assert done.returncode == 1
    assert "acls:" in done.stderr and "allowed to alter ACLs" in done.stderr, done.stderr


def test_mutual_tls_clients_are_the_role_their_certificate_names(secured):
    """SSL with a client certificate: CN=<user> is User:<user>, so the roles' ACLs bind it too."""
    from streams.kafka.access import list_topics
    worker = replace(secured.broker.mtls_client("makegood-worker"), namespace=secured.plain.namespace)
    _, topics = list_topics(worker)
    assert len({t for t in topics if t.startswith(worker.namespace + ".")}) == 11      # every declared topic: it reads the inputs and writes the outputs
    billing = replace(secured.broker.mtls_client("billing"), namespace=secured.plain.namespace)
    assert _send(billing, ACTIONS) == "TOPIC_AUTHORIZATION_FAILED"
    # no client certificate: the broker ends the handshake
    anonymous = replace(worker, kafka_security=replace(worker.kafka_security, ssl_cert_file=None, ssl_key_file=None))
    line = _one_line(cli(anonymous, "topics", "create"))
    assert "TLS with Kafka at" in line and "client certificate" in line, line


def test_acls_the_roles_file_does_not_grant_are_listed_and_pruned(secured):
    """Someone let billing write the remedy topic (and granted a prefix wider than makegood's):
    `--acls` lists both, `--prune-acls` takes billing's write away again and leaves the wider
    ACL, which is not makegood's alone, for a person to look at."""
    import time
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType
    from streams.kafka.acls import _wait_visible, prune_acls
    from streams.kafka.topics import admin_client
    ns = secured.plain.namespace
    stray = AclBinding(ResourceType.TOPIC, f"{ns}.{ACTIONS}", ResourcePatternType.LITERAL, "User:billing", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    wide = AclBinding(ResourceType.TOPIC, f"{ns}.remedy.", ResourcePatternType.PREFIXED, "User:mallory", "*",
                      AclOperation.WRITE, AclPermissionType.ALLOW)
    admin = admin_client(secured.plain)
    try:
        for fut in admin.create_acls([stray, wide], request_timeout=30).values():
            fut.result()
        _wait_visible(admin, [stray, wide])
        assert _send(secured.billing, ACTIONS) is None             # the hole is real

        listed = cli(secured.admin, "topics", "create", "--acls")
        assert listed.returncode == 0, listed.stderr
        assert "1 ACL(s) on makegood's names are not in acls.yaml" in listed.stderr, listed.stderr
        assert f"User:billing WRITE on topic {ns}.{ACTIONS}" in listed.stderr
        assert f"left alone, wider than makegood's names (check it is meant): User:mallory WRITE on topic {ns}.remedy.*" \
            in listed.stderr

        pruned = cli(secured.admin, "topics", "create", "--prune-acls")
        assert pruned.returncode == 0, pruned.stderr
        assert f"acls: removed User:billing WRITE on topic {ns}.{ACTIONS} (not in acls.yaml)" in pruned.stdout
        assert "User:mallory" in pruned.stderr and "removed User:mallory" not in pruned.stdout
        deadline = time.monotonic() + 30
        while _send(secured.billing, ACTIONS) is None and time.monotonic() < deadline:
            time.sleep(1)                                           # the broker applies the deletion
        assert _send(secured.billing, ACTIONS) == "TOPIC_AUTHORIZATION_FAILED"

        again = cli(secured.admin, "topics", "create", "--acls")
        assert again.returncode == 0 and "not in acls.yaml" not in again.stderr, again.stderr
        assert _send(secured.worker, ACTIONS) is None              # the roles' own grants are untouched
    finally:
        prune_acls(secured.plain, [stray, wide])
