"""deploy/acls.yaml -> ACL bindings, and deploy/topics.yaml's per-environment profiles."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from streams.errors import TopicError
from streams.kafka.acls import bindings, load_roles
from streams.kafka.topics import INPUT_TOPICS, load_topic_specs, topic_profile
from streams.ledger.rebuild import OUTPUT_TOPICS
from streams.settings import ROOT, Settings

ROLES, TOPICS = ROOT / "deploy" / "acls.yaml", ROOT / "deploy" / "topics.yaml"


def _grants(settings, roles, principal):
    return {(b.restype, b.name, b.resource_pattern_type, b.operation) for b in bindings(settings, roles)
            if b.principal == principal}


def test_each_role_gets_exactly_its_topics_under_the_namespace():
    s = Settings.from_env({}, namespace="prod")
    roles = load_roles(ROLES, TOPICS)
    lit, pre = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    publisher = _grants(s, roles, "User:makegood-publisher")
    assert publisher == {(ResourceType.TOPIC, f"prod.{t}", lit, AclOperation.WRITE) for t in INPUT_TOPICS}
    billing = _grants(s, roles, "User:billing")
    assert {g[1] for g in billing if g[3] is AclOperation.WRITE} == set()
    assert {g[1] for g in billing if g[0] is ResourceType.TOPIC} == {
        "prod.remedy.actions.v1", "prod.remedy.reviews.v1", "prod.remedy.notices.v1"}
    worker = _grants(s, roles, "User:makegood-worker")
    assert (ResourceType.TRANSACTIONAL_ID, "prod.makegood.", pre, AclOperation.WRITE) in worker
    assert (ResourceType.GROUP, "prod.makegood.", pre, AclOperation.READ) in worker
    assert {g[1] for g in worker if g[3] is AclOperation.WRITE and g[0] is ResourceType.TOPIC} >= {
        f"prod.{t}" for t in OUTPUT_TOPICS}
    assert not {g[1] for g in worker if g[3] is AclOperation.WRITE} & {f"prod.{t}" for t in INPUT_TOPICS}
    # the worker's own consumer groups and transactional ids fall under its prefixes
    assert s.entitlements_group.startswith("prod.makegood.") and s.group("feed-x").startswith("prod.makegood.")


def test_principals_can_be_mapped_and_a_typo_is_an_error(tmp_path):
    roles = load_roles(ROLES, TOPICS, {"worker": "User:svc-makegood"})
    assert roles["worker"].principal == "User:svc-makegood" and roles["worker"].user == "svc-makegood"
    with pytest.raises(TopicError, match="no role named biling"):
        load_roles(ROLES, TOPICS, {"biling": "User:x"})
    bad = tmp_path / "acls.yaml"
    bad.write_text(yaml.safe_dump({"roles": {"x": {"principal": "User:x", "read": ["remedy.action.v1"]}}}))
    with pytest.raises(TopicError, match="not in topics.yaml: remedy.action.v1"):
        load_roles(bad, TOPICS)


def test_profiles_choose_replication_and_min_insync_replicas():
    assert topic_profile(TOPICS, "production").replication == 3
    for profile, rf, isr in (("local", 1, "1"), ("production", 3, "2")):
        specs = load_topic_specs(TOPICS, profile)
        assert {(s.replication, s.config["min.insync.replicas"]) for s in specs.values()} == {(rf, isr)}
    with pytest.raises(TopicError, match="no topic profile 'staging'"):
        load_topic_specs(TOPICS, "staging")


def test_every_topic_the_ledger_rebuild_reads_never_expires_as_the_readme_promises():
    specs = load_topic_specs(TOPICS)
    for name in OUTPUT_TOPICS:
        assert specs[name].config["retention.ms"] == "-1", name
        assert specs[name].config["cleanup.policy"] == "delete", name
    assert "never expire" in (ROOT / "README.md").read_text()


def test_the_production_job_uses_the_production_profile_and_creates_the_acls():
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "production" / "worker-deployment.yaml").read_text()))
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["MAKEGOOD_TOPIC_PROFILE"] == "production" and config["MAKEGOOD_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in config)
    job = next(d for d in docs if d["kind"] == "Job")["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["makegood", "topics", "create", "--acls"]
    assert Path(config["MAKEGOOD_KAFKA_SASL_PASSWORD_FILE"]).parent.as_posix() in {
        m["mountPath"] for m in job["volumeMounts"]}


def _allow(restype, name, principal, op, pattern=ResourcePatternType.LITERAL):
    from confluent_kafka.admin import AclBinding, AclPermissionType
    return AclBinding(restype, name, pattern, principal, "*", op, AclPermissionType.ALLOW)


def test_drift_is_what_the_roles_file_does_not_grant_on_makegoods_names():
    from confluent_kafka.admin import AclBinding, AclPermissionType
    from streams.kafka.acls import classify, shown
    s = Settings.from_env({}, namespace="prod")
    roles = load_roles(ROLES, TOPICS)
    topics = load_topic_specs(TOPICS)
    T, G, X, W, R = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID,
                     AclOperation.WRITE, AclOperation.READ)
    pre = ResourcePatternType.PREFIXED
    granted = bindings(s, roles)
    billing_writes = _allow(T, "prod.remedy.actions.v1", "User:billing", W)      # dropped from the file
    stranger = _allow(T, "prod.remedy.actions.v1", "User:mallory", W)             # never in it
    stranger_group = _allow(G, "prod.makegood.entitlements", "User:mallory", R)
    stranger_txn = _allow(X, "prod.makegood.", "User:mallory", W, pre)
    wide = _allow(T, "prod.remedy.", "User:mallory", W, pre)                     # reaches ours and others'
    wildcard = _allow(T, "*", "User:ops", R)
    elsewhere = [_allow(T, "prod.other-app.events", "User:mallory", W),          # not makegood's
                 _allow(T, "staging.remedy.actions.v1", "User:mallory", W),      # another namespace
                 _allow(G, "billing-reports", "User:billing", R)]
    deny = AclBinding(T, "prod.remedy.actions.v1", ResourcePatternType.LITERAL, "User:mallory", "*", W,
                      AclPermissionType.DENY)
    drift = classify(s, roles, topics, granted + [billing_writes, stranger, stranger_group, stranger_txn,
                                                  wide, wildcard, deny] + elsewhere)
    assert set(drift.stale) == {billing_writes, stranger, stranger_group, stranger_txn}
    assert set(drift.wider) == {wide, wildcard}
    assert classify(s, roles, topics, granted) == type(drift)()       # exactly the file: no drift
    assert shown(stranger_txn) == "User:mallory WRITE on transactional-id prod.makegood.*"
