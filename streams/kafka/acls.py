"""Roles and their Kafka ACLs (deploy/acls.yaml), created on a cluster by
`makegood topics create --acls` and by `makegood dev up` for its local users.

The file is the whole truth about makegood's names: `--acls` also lists the ALLOW ACLs on
them that it does not grant (a role's grant since dropped from the file, another principal
writing a remedy topic), and `--prune-acls` removes them (`Drift`).

A role lists topics it may read or write, and the prefixes of the consumer groups and
transactional ids it may use; every name is taken under the settings' namespace, so a
namespaced deployment (and every test) gets ACLs on exactly its own topics. Creating an ACL
that exists is a no-op on the broker, so this is idempotent like topic creation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import yaml
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   ResourcePatternType, ResourceType)

from streams.errors import TopicError
from streams.kafka.topics import admin_client, load_topic_specs
from streams.settings import Settings

_KEYS = {"principal", "read", "write", "groups", "transactional_ids"}
_ANY = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                        AclOperation.ANY, AclPermissionType.ANY)


@dataclass(frozen=True)
class Role:
    name: str
    principal: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    transactional_ids: tuple[str, ...] = ()

    @property
    def user(self) -> str:
        """The principal's name without its type (`User:billing` -> `billing`)."""
        return self.principal.split(":", 1)[1]


def default_roles_file(settings: Settings) -> Path:
    return settings.root / "deploy" / "acls.yaml"


def load_roles(path: Path, topics_file: Path | None = None,
               principals: Mapping[str, str] | None = None) -> dict[str, Role]:
    """The roles of a roles file; `principals` (role -> `User:name`) overrides the file's.
    With `topics_file`, every topic a role names must be declared there (a typo would
    otherwise grant nothing, silently)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TopicError(f"acls: cannot read {path}: {exc}") from None
    declared = set(load_topic_specs(topics_file)) if topics_file else None
    roles: dict[str, Role] = {}
    for name, body in (doc or {}).get("roles", {}).items():
        unknown = set(body) - _KEYS
        if unknown:
            raise TopicError(f"acls: {path}: role {name}: unknown key(s) {', '.join(sorted(unknown))}")
        principal = (principals or {}).get(name) or body.get("principal", "")
        if ":" not in principal:
            raise TopicError(f"acls: {path}: role {name}: principal {principal!r} is not TYPE:name (User:...)")
        role = Role(name, principal, *(tuple(str(x) for x in body.get(k) or ())
                                       for k in ("read", "write", "groups", "transactional_ids")))
        if declared is not None:
            stray = [t for t in role.read + role.write if t not in declared]
            if stray:
                raise TopicError(f"acls: {path}: role {name}: topics not in {topics_file.name}: {', '.join(stray)}")
        roles[name] = role
    extra = set(principals or {}) - set(roles)
    if extra:
        raise TopicError(f"acls: no role named {', '.join(sorted(extra))} in {path}")
    return roles


def bindings(settings: Settings, roles: Mapping[str, Role]) -> list[AclBinding]:
    """The ACLs of `roles` under the settings' namespace."""
    allow, lit, pre = AclPermissionType.ALLOW, ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    out: list[AclBinding] = []
    for role in roles.values():
        for kind, names, pattern, op in (
                (ResourceType.TOPIC, role.read, lit, AclOperation.READ),
                (ResourceType.TOPIC, role.write, lit, AclOperation.WRITE),
                (ResourceType.GROUP, role.groups, pre, AclOperation.READ),
                (ResourceType.TRANSACTIONAL_ID, role.transactional_ids, pre, AclOperation.WRITE)):
            for name in names:
                out.append(AclBinding(kind, settings.topic(name), pattern, role.principal, "*", op, allow))
    return out


def create_acls(settings: Settings, roles: Mapping[str, Role], say: Callable[[str], None] = print) -> int:
    """Create every ACL of `roles`; returns how many bindings were sent (existing ones are no-ops).
    The settings' principal must be allowed to alter the cluster's ACLs (an admin)."""
    wanted = bindings(settings, roles)
    if not wanted:
        return 0
    admin = admin_client(settings)
    failed = []
    for binding, fut in admin.create_acls(wanted, request_timeout=30).items():
        try:
            fut.result()
        except Exception as exc:  # noqa: BLE001 - each binding's own error, collected
            failed.append(f"{binding.restype.name} {binding.name} {binding.operation.name} "
                          f"for {binding.principal}: {_reason(exc)}")
    if failed:
        raise TopicError(f"acls: {len(failed)} of {len(wanted)} ACLs refused by {settings.bootstrap} "
                         f"(is {settings.kafka_security.describe()} allowed to alter ACLs?): {failed[0]}")
    _wait_visible(admin, wanted)
    for role in roles.values():
        say(f"acls: {role.name} -> {role.principal}: read {len(role.read)} topic(s), write {len(role.write)}, "
            f"groups {', '.join(settings.topic(g) + '*' for g in role.groups) or '-'}, "
            f"transactional ids {', '.join(settings.topic(t) + '*' for t in role.transactional_ids) or '-'}")
    return len(wanted)


def _wait_visible(admin, wanted: list[AclBinding], timeout: float = 30.0) -> None:
    """ACLs apply once the broker's metadata has them (a publisher started at once was refused
    for a moment on the local broker): wait until the broker describes every one."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        present = set(admin.describe_acls(_ANY, request_timeout=10).result())
        missing = [b for b in wanted if b not in present]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TopicError(f"acls: created but {len(missing)} not visible after {timeout:.0f} s")
        time.sleep(0.2)


@dataclass(frozen=True)
class Drift:
    """ALLOW ACLs on the cluster that the roles file does not grant, on makegood's names.

    stale: on exactly makegood's names (a declared topic, a name under a role's group or
    transactional-id prefix): a role's grant the file has since dropped, or a principal the
    file does not know at all (someone else writing billing's topic). `--prune-acls` removes them.
    wider: a prefixed or wildcard ACL that reaches makegood's topics, groups or ids among
    others': reported, never removed, since it is not makegood's alone to take away."""
    stale: tuple[AclBinding, ...] = ()
    wider: tuple[AclBinding, ...] = ()


def classify(settings: Settings, roles: Mapping[str, Role], topics: Iterable[str],
             present: Iterable[AclBinding]) -> Drift:
    """The drift among `present` (every ACL the cluster describes) from `roles` and the
    declared `topics` (logical names), under the settings' namespace."""
    wanted = set(bindings(settings, roles))
    names = {settings.topic(t) for t in topics}
    prefixes = {ResourceType.GROUP: {settings.topic(g) for r in roles.values() for g in r.groups},
                ResourceType.TRANSACTIONAL_ID: {settings.topic(t) for r in roles.values()
                                                for t in r.transactional_ids}}
    stale, wider = [], []
    for b in present:
        if b in wanted or b.permission_type is not AclPermissionType.ALLOW:
            continue
        if b.restype is ResourceType.TOPIC:
            exact = b.resource_pattern_type is ResourcePatternType.LITERAL and b.name in names
            reaches = b.name == "*" or (b.resource_pattern_type is ResourcePatternType.PREFIXED
                                        and any(t.startswith(b.name) for t in names))
        elif b.restype in prefixes:
            mine = prefixes[b.restype]
            exact = b.name != "*" and any(b.name.startswith(p) for p in mine)
            reaches = b.name == "*" or (b.resource_pattern_type is ResourcePatternType.PREFIXED
                                        and any(p.startswith(b.name) for p in mine))
        else:
            continue
        if exact:
            stale.append(b)
        elif reaches:
            wider.append(b)
    return Drift(tuple(sorted(stale, key=shown)), tuple(sorted(wider, key=shown)))


def shown(b: AclBinding) -> str:
    """`User:x WRITE on topic remedy.actions.v1` (a prefixed pattern ends in `*`)."""
    star = "*" if b.resource_pattern_type is ResourcePatternType.PREFIXED else ""
    return (f"{b.principal} {b.operation.name} on {b.restype.name.lower().replace('_', '-')} {b.name}{star}"
            + ("" if b.host == "*" else f" from {b.host}"))


def acl_drift(settings: Settings, roles: Mapping[str, Role], topics_file: Path) -> Drift:
    """classify() against every ACL the cluster holds (the settings' principal must be allowed
    to describe them: an admin)."""
    admin = admin_client(settings)
    present = admin.describe_acls(_ANY, request_timeout=30).result()
    return classify(settings, roles, load_topic_specs(topics_file), present)


def prune_acls(settings: Settings, stale: Iterable[AclBinding]) -> int:
    """Delete exactly these bindings; returns how many the broker deleted."""
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                                b.operation, b.permission_type) for b in stale]
    if not filters:
        return 0
    admin = admin_client(settings)      # held until every answer is in: a collected client cancels them
    deleted = 0
    for fut in admin.delete_acls(filters, request_timeout=30).values():
        deleted += len(fut.result())
    return deleted


def delete_acls(settings: Settings, roles: Mapping[str, Role]) -> None:
    """Remove the ACLs `create_acls` made for these roles under this namespace (tests)."""
    prune_acls(settings, bindings(settings, roles))


def _reason(exc: Exception) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if hasattr(err, "str") else str(exc)
