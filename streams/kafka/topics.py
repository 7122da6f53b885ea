"""Topic declarations (deploy/topics.yaml) and their idempotent creation on the broker."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import yaml
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
                                   ResourceType)

from streams.settings import Settings
from streams.errors import TopicError

OUTAGES = "outage.windows.v1"
ENTITLEMENTS = "entitlement.states.v1"
REPORTS = "damage.reports.v1"
ACTIONS = "remedy.actions.v1"
REVIEWS = "remedy.reviews.v1"
NOTICES = "remedy.notices.v1"
DEADLETTER = "remedy.deadletter.v1"
RETRIAGE = "makegood.retriage.v1"
CASES = "makegood.cases.v1"
APPROVALS = "makegood.approvals.v1"      # operators' releases of held revisions (processors.approval)
DECISIONS = "remedy.review-decisions.v1"

# Which Avro schema each public topic carries (schemas/<name>.avsc).
TOPIC_SCHEMAS: Mapping[str, str] = {
    OUTAGES: "outage_window",
    ENTITLEMENTS: "entitlement_state",
    REPORTS: "damage_report",
    ACTIONS: "remedy_action",
    REVIEWS: "review_case",
    NOTICES: "user_notice",
    DEADLETTER: "dead_letter",
    APPROVALS: "incident_approval",
    DECISIONS: "review_decision",
}
INPUT_TOPICS = (OUTAGES, ENTITLEMENTS, REPORTS)   # replayable; review decisions are read with the reports


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: Mapping[str, str]


@dataclass(frozen=True)
class TopicProfile:
    """How durable an environment's topics are (deploy/topics.yaml `profiles`)."""
    name: str
    replication: int
    min_insync_replicas: int


def topic_profile(path: Path, name: str = "local") -> TopicProfile:
    doc = yaml.safe_load(path.read_text())
    profiles = doc.get("profiles") or {}
    if name not in profiles:
        raise TopicError(f"{path}: no topic profile {name!r} (MAKEGOOD_TOPIC_PROFILE); "
                         f"declared: {', '.join(profiles) or 'none'}")
    body = profiles[name]
    profile = TopicProfile(name, int(body["replication"]), int(body["min.insync.replicas"]))
    if not 1 <= profile.min_insync_replicas <= profile.replication:
        raise TopicError(f"{path}: profile {name}: min.insync.replicas must be between 1 and the replication factor")
    return profile


def load_topic_specs(path: Path, profile: str = "local") -> dict[str, TopicSpec]:
    """The declared topics, with the replication factor and min.insync.replicas of `profile`."""
    doc = yaml.safe_load(path.read_text())
    prof = topic_profile(path, profile)
    specs = {}
    for name, body in doc["topics"].items():
        config = {"min.insync.replicas": str(prof.min_insync_replicas),
                  **{k: str(v) for k, v in (body.get("config") or {}).items()}}
        specs[name] = TopicSpec(name, int(body["partitions"]), prof.replication, config)
    for co in (RETRIAGE, CASES, DECISIONS):
        if specs[REPORTS].partitions != specs[co].partitions:
            raise TopicError(f"{path}: {co} must have as many partitions as {REPORTS}")
    return specs


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_config())


def create_topics(settings: Settings, say: Callable[[str], None] = print) -> dict[str, TopicSpec]:
    """Create every declared topic under the settings' namespace. Existing ones keep their
    partitions and replicas, but a declared config they differ in is set (and said), so a
    cluster created before a change of deploy/topics.yaml (a retention) converges."""
    specs = load_topic_specs(settings.topics_file, settings.topic_profile)
    from streams.kafka.access import list_topics
    try:
        admin, existing = list_topics(settings, timeout=15)
    except KafkaException as exc:
        raise TopicError(f"topics: cannot reach Kafka at {settings.bootstrap} ({_reason(exc)}); "
                         "check MAKEGOOD_BOOTSTRAP, MAKEGOOD_KAFKA_* and that a broker is up, "
                         "then run this again") from None
    wanted = [NewTopic(settings.topic(s.name), num_partitions=s.partitions,
                       replication_factor=s.replication, config=dict(s.config))
              for s in specs.values() if settings.topic(s.name) not in existing]
    created = 0
    if wanted:
        for name, fut in admin.create_topics(wanted, operation_timeout=30).items():
            try:
                fut.result()
                created += 1
                say(f"topics: created {name}")
            except Exception as exc:  # a concurrent creator (or stale metadata) got there first
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TopicError(f"topics: could not create {name}: {exc}") from None
    if created:
        _wait_visible(admin, [t.topic for t in wanted])
    _converge(admin, settings, [s for s in specs.values() if settings.topic(s.name) in existing], say)
    present = len(specs) - created
    if present:
        say(f"topics: {present} already present")
    return specs


def _converge(admin: AdminClient, settings: Settings, specs: list[TopicSpec], say: Callable[[str], None]) -> None:
    """Set the declared configs an existing topic differs in; say when its replication is
    below the profile's (that takes a partition reassignment, not a config change)."""
    if not specs:
        return
    resources = {s.name: ConfigResource(ResourceType.TOPIC, settings.topic(s.name)) for s in specs}
    try:
        described = admin.describe_configs(list(resources.values()), request_timeout=30)
        current = {res.name: {k: v.value for k, v in fut.result().items()} for res, fut in described.items()}
    except Exception as exc:  # noqa: BLE001 - e.g. no DescribeConfigs ACL: creation was still done
        say(f"topics: could not compare existing topics' configs ({_reason(exc)})")
        return
    metadata = admin.list_topics(timeout=15).topics
    changes = []
    for spec in specs:
        name = settings.topic(spec.name)
        diff = {k: v for k, v in spec.config.items() if current.get(name, {}).get(k) != v}
        if diff:
            entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in diff.items()]
            changes.append(ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries))
            for k, v in diff.items():
                say(f"topics: {name}: {k} {current.get(name, {}).get(k)} -> {v}")
        md = metadata.get(name)
        replicas = min((len(p.replicas) for p in md.partitions.values()), default=0) if md else 0
        if md and replicas < spec.replication:
            say(f"topics: {name} has {replicas} replica(s), the {settings.topic_profile} profile wants "
                f"{spec.replication}: reassign its partitions (kafka-reassign-partitions)")
    for res, fut in admin.incremental_alter_configs(changes).items() if changes else ():
        try:
            fut.result()
        except Exception as exc:  # noqa: BLE001
            raise TopicError(f"topics: could not set the configs of {res.name}: {_reason(exc)}") from None


def _reason(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if hasattr(err, "str") else str(exc)


def _wait_visible(admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    """A topic is usable only once its metadata has propagated: wait for every partition leader."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=10).topics
        missing = [n for n in names
                   if n not in topics or topics[n].error is not None or not topics[n].partitions
                   or any(p.leader < 0 for p in topics[n].partitions.values())]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TopicError(f"topics: created but not visible after {timeout:.0f} s: {', '.join(missing)}")
        time.sleep(0.2)


def describe_topic(settings: Settings, logical: str) -> tuple[int, dict[str, str]]:
    """(partition count, non-default configs) of a topic as the broker has it."""
    admin = admin_client(settings)
    name = settings.topic(logical)
    md = admin.list_topics(topic=name, timeout=10).topics[name]
    if md.error is not None:
        raise TopicError(f"{name}: {md.error}")
    res = ConfigResource(ResourceType.TOPIC, name)
    configs = admin.describe_configs([res])[res].result()
    return len(md.partitions), {k: v.value for k, v in configs.items()}


def delete_namespace(settings: Settings) -> None:
    """Delete every topic under a (test) namespace."""
    if not settings.namespace:
        raise TopicError("refusing to delete topics outside a namespace")
    admin = admin_client(settings)
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(settings.namespace + ".")]
    if names:
        for fut in admin.delete_topics(names, operation_timeout=30).values():
            try:
                fut.result()
            except Exception:
                pass
