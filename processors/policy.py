"""Remedy policies: data, not code (DESIGN §3). Format documented in docs/policy.md.

`parse_policy` validates a whole mapping up front and raises PolicyError naming the
file, the rule and the field; after that, `Policy.rules_for` answers from a dict
built once, because the live sweep asks it for every entitlement it sees.
"""

from __future__ import annotations

import enum
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import yaml

from processors.errors import PolicyError
from processors.policyctx import Ctx as _Ctx
from processors.limits import Limits, parse_limits
from processors.model import Action, BillingChannel, EntitlementKind, ReportCategory
from processors.units import notice_settings
from processors.windows import HOUR_MS


class OnRetract(str, enum.Enum):
    KEEP = "keep"
    REVERSE = "reverse"


class Eligibility(str, enum.Enum):
    ACTIVE_DURING_WINDOW = "active_during_window"
    ACTIVE_AT = "active_at"
    EXPIRED_DURING_WINDOW = "expired_during_window"


class RemedyKind(str, enum.Enum):
    EXTEND = "extend"  # fixed hours
    EXTEND_OUTAGE = "extend_outage"  # outage duration rounded up to a unit
    CREDIT = "credit"  # money worth N hours of the period price
    GRANT = "grant"  # an item usable for N hours


class Routing(str, enum.Enum):
    REVIEW = "review"
    COVERED_OR_REVIEW = "covered_or_review"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Remedy:
    kind: RemedyKind
    hours: int = 0  # EXTEND, CREDIT, GRANT
    unit_ms: int = 0  # EXTEND_OUTAGE
    item: str | None = None  # GRANT

    @property
    def action(self) -> Action:
        if self.kind is RemedyKind.CREDIT:
            return Action.CREDIT
        if self.kind is RemedyKind.GRANT:
            return Action.GRANT
        return Action.EXTEND

    @property
    def duration_based(self) -> bool:
        """Whether what it owes grows with the window (so a longer window tops it up)."""
        return self.kind is RemedyKind.EXTEND_OUTAGE


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    services: frozenset[str] | None  # None = any known service
    kinds: frozenset[EntitlementKind] | None
    channels: frozenset[BillingChannel] | None
    incidents: frozenset[str] | None  # None = every incident
    eligibility: Eligibility
    remedy: Remedy
    active_at: int | None = None  # for Eligibility.ACTIVE_AT

    def applies_to(self, incident_id: str) -> bool:
        return self.incidents is None or incident_id in self.incidents


@dataclass(frozen=True, slots=True)
class PayoutTier:
    id: str
    min_loss_krw: int  # inclusive
    max_loss_krw: int  # inclusive
    payout_krw: int


@dataclass(frozen=True, slots=True)
class ReportPolicy:
    payout_rule_id: str
    tiers: tuple[PayoutTier, ...]  # contiguous from 0, payouts non-decreasing
    routing: Mapping[ReportCategory, Routing]  # individual reports
    intake_ms: int  # after the incident closes
    business_extra_ms: int  # on top of intake_ms for BUSINESS reporters

    def tier_for(self, loss_krw: int) -> PayoutTier | None:
        """The tier containing loss_krw, or None when it lies above every tier."""
        for tier in self.tiers:
            if tier.min_loss_krw <= loss_krw <= tier.max_loss_krw:
                return tier
        return None


_Key = tuple[str, EntitlementKind, BillingChannel]
DEFAULT_TIMEZONE = "Asia/Seoul"  # the reference incident's (KST); a policy's optional `timezone`


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    version: str
    services: frozenset[str]
    on_retract: OnRetract
    rules: tuple[Rule, ...]
    reports: ReportPolicy
    origin: str = "<policy>"
    approval: Limits | None = None  # None: nothing is held (processors.approval)
    timezone: str = DEFAULT_TIMEZONE  # IANA zone people of the incident read times in (reports, notices)
    locale: str = "en"        # notices: the language of a user whose record names none
    time_zone: str = "UTC"    # notices: dates as the incident's users read them
    _index: Mapping[_Key, tuple[Rule, ...]] = field(default_factory=dict, repr=False)

    def rules_for(
        self, service: str, kind: EntitlementKind, channel: BillingChannel
    ) -> tuple[Rule, ...]:
        """Rules matching this (service, kind, channel), in file order; () when none."""
        return self._index.get((service, kind, channel), ())


# ---------------------------------------------------------------------------- parsing

_TOP_KEYS = {"version", "services", "on_retract", "intake", "rules", "reports", "approval", "timezone",
             "notices"}

_RULE_KEYS = {"id", "services", "kinds", "channels", "incidents", "eligible", "remedy"}
_REPORT_KEYS = {"business", "individual"}
_BUSINESS_KEYS = {"rule", "tiers"}
_TIER_KEYS = {"id", "min_loss", "max_loss", "payout"}
_INTAKE_KEYS = {"individual", "business_extra"}


def load_policy(path: str) -> Policy:
    """Read and validate a policy YAML file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(str(path), None, "<file>", str(exc)) from None
    return parse_policy(data, str(path))


def parse_policy(mapping: Mapping[str, Any], origin: str) -> Policy:
    """Validate a policy given as a mapping; `origin` names it in error messages."""
    ctx = _Ctx(origin)
    top = ctx.mapping(mapping, "", _TOP_KEYS)
    for required in ("version", "services", "rules"):
        if required not in top:
            raise ctx.fail(required, "missing")
    version = ctx.text(top["version"], "version")
    services = ctx.names(top["services"], "services")
    on_retract_raw = top.get("on_retract", "keep")
    try:
        on_retract = OnRetract(on_retract_raw)
    except ValueError:
        raise ctx.fail("on_retract", f"expected keep or reverse, got {on_retract_raw!r}") from None
    if not isinstance(top["rules"], list):
        raise ctx.fail("rules", "expected a list of rules")
    rules = tuple(_parse_rule(raw, i, origin, services) for i, raw in enumerate(top["rules"]))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise PolicyError(origin, rule.id, "id", "duplicate rule id")
        seen.add(rule.id)
    reports = _parse_reports(top.get("reports", {}), top.get("intake", {}), ctx, seen)
    timezone = ctx.text(top.get("timezone", DEFAULT_TIMEZONE), "timezone")
    if timezone not in zoneinfo.available_timezones():  # IANA names: Asia/Seoul, UTC, ...
        raise ctx.fail("timezone", f"unknown IANA time zone {timezone!r}; write e.g. Asia/Seoul or UTC")
    locale, time_zone = notice_settings(ctx.mapping(top.get("notices", {}), "notices", {"locale", "time_zone"}), ctx.fail,
                                         default_zone=timezone)
    return Policy(
        version=version,
        services=services,
        on_retract=on_retract,
        rules=rules,
        reports=reports,
        origin=origin,
        approval=parse_limits(top.get("approval"), ctx.fail),
        timezone=timezone,
        locale=locale,
        time_zone=time_zone,
        _index=_build_index(rules, services, origin),
    )


def _parse_rule(raw: Any, position: int, origin: str, services: frozenset[str]) -> Rule:
    rule_id = raw.get("id") if isinstance(raw, Mapping) else None
    ctx = _Ctx(origin, rule_id if isinstance(rule_id, str) else f"#{position + 1}")
    body = ctx.mapping(raw, "", _RULE_KEYS)
    rule_id = ctx.text(body.get("id"), "id")
    for required in ("eligible", "remedy"):
        if required not in body:
            raise ctx.fail(required, "missing")
    rule_services = ctx.names(body["services"], "services") if "services" in body else None
    if rule_services is not None and not rule_services <= services:
        unknown = sorted(rule_services - services)
        raise ctx.fail("services", f"service codes not listed in top-level services: {unknown}")
    kinds = ctx.names(body["kinds"], "kinds", EntitlementKind) if "kinds" in body else None
    channels = ctx.names(body["channels"], "channels", BillingChannel) if "channels" in body else None
    incidents = ctx.names(body["incidents"], "incidents") if "incidents" in body else None
    eligibility, at = _parse_eligible(body["eligible"], ctx)
    return Rule(
        id=rule_id,
        services=rule_services,
        kinds=kinds,
        channels=channels,
        incidents=incidents,
        eligibility=eligibility,
        remedy=_parse_remedy(body["remedy"], ctx),
        active_at=at,
    )


def _parse_eligible(raw: Any, ctx: _Ctx) -> tuple[Eligibility, int | None]:
    if isinstance(raw, str):
        if raw in (Eligibility.ACTIVE_DURING_WINDOW.value, Eligibility.EXPIRED_DURING_WINDOW.value):
            return Eligibility(raw), None
        raise ctx.fail("eligible", f"unknown eligibility {raw!r}")
    body = ctx.mapping(raw, "eligible", {Eligibility.ACTIVE_AT.value})
    if not body:
        raise ctx.fail("eligible", "empty mapping")
    return Eligibility.ACTIVE_AT, ctx.instant(body["active_at"], "eligible.active_at")


def _parse_remedy(raw: Any, ctx: _Ctx) -> Remedy:
    body = ctx.mapping(raw, "remedy", {k.value for k in RemedyKind})
    if len(body) != 1:
        raise ctx.fail("remedy", f"expected exactly one of {[k.value for k in RemedyKind]}")
    ((name, value),) = body.items()
    kind = RemedyKind(name)
    fld = f"remedy.{name}"
    if kind is RemedyKind.EXTEND_OUTAGE:
        unit = ctx.mapping(value, fld, {"round_up_to"})
        if "round_up_to" not in unit:
            raise ctx.fail(f"{fld}.round_up_to", "missing")
        return Remedy(kind, unit_ms=ctx.hours(unit["round_up_to"], f"{fld}.round_up_to") * HOUR_MS)
    if kind is RemedyKind.GRANT:
        grant = ctx.mapping(value, fld, {"item", "hours"})
        for required in ("item", "hours"):
            if required not in grant:
                raise ctx.fail(f"{fld}.{required}", "missing")
        return Remedy(
            kind,
            hours=ctx.hours(grant["hours"], f"{fld}.hours"),
            item=ctx.text(grant["item"], f"{fld}.item"),
        )
    return Remedy(kind, hours=ctx.hours(value, fld))


def _parse_reports(raw: Any, intake_raw: Any, ctx: _Ctx, rule_ids: set[str]) -> ReportPolicy:
    intake = ctx.mapping(intake_raw, "intake", _INTAKE_KEYS)
    intake_ms = ctx.hours(intake.get("individual", "14d"), "intake.individual") * HOUR_MS
    extra_ms = ctx.hours(intake.get("business_extra", "14d"), "intake.business_extra") * HOUR_MS
    body = ctx.mapping(raw, "reports", _REPORT_KEYS)
    business = ctx.mapping(body.get("business", {}), "reports.business", _BUSINESS_KEYS)
    payout_rule = ctx.text(business.get("rule", "business-payout"), "reports.business.rule")
    if payout_rule in rule_ids:
        raise PolicyError(ctx.origin, payout_rule, "reports.business.rule", "clashes with a rule id")
    tiers = _parse_tiers(business.get("tiers", []), ctx)
    routing = {
        ReportCategory.PAID_SERVICE: Routing.COVERED_OR_REVIEW,
        ReportCategory.FREE_SERVICE: Routing.REVIEW,
        ReportCategory.BUSINESS_LOSS: Routing.REVIEW,
        ReportCategory.OTHER: Routing.REVIEW,
    }
    individual = ctx.mapping(body.get("individual", {}), "reports.individual", set(ReportCategory.__members__))
    for name, value in individual.items():
        fld = f"reports.individual.{name}"
        try:
            route = Routing(value)
        except ValueError:
            raise ctx.fail(fld, f"unknown routing {value!r}; use review, covered_or_review or reject") from None
        if route is Routing.COVERED_OR_REVIEW and name != ReportCategory.PAID_SERVICE.name:
            raise ctx.fail(fld, "covered_or_review only makes sense for PAID_SERVICE")
        routing[ReportCategory[name]] = route
    return ReportPolicy(payout_rule, tiers, routing, intake_ms, extra_ms)


def _parse_tiers(raw: Any, ctx: _Ctx) -> tuple[PayoutTier, ...]:
    if not isinstance(raw, list):
        raise ctx.fail("reports.business.tiers", "expected a list of tiers")
    tiers: list[PayoutTier] = []
    for i, item in enumerate(raw):
        tier_id = item.get("id") if isinstance(item, Mapping) else None
        tctx = _Ctx(ctx.origin, tier_id if isinstance(tier_id, str) else f"tier #{i + 1}")
        body = tctx.mapping(item, "", _TIER_KEYS)
        for required in ("id", "max_loss", "payout"):
            if required not in body:
                raise tctx.fail(required, "missing")
        tier = PayoutTier(
            id=tctx.text(body["id"], "id"),
            min_loss_krw=tctx.money(body.get("min_loss", 0), "min_loss"),
            max_loss_krw=tctx.money(body["max_loss"], "max_loss"),
            payout_krw=tctx.money(body["payout"], "payout"),
        )
        expected_min = tiers[-1].max_loss_krw + 1 if tiers else 0
        if tier.min_loss_krw != expected_min:
            raise tctx.fail("min_loss", f"tiers must be contiguous: expected {expected_min}")
        if tier.max_loss_krw < tier.min_loss_krw:
            raise tctx.fail("max_loss", "below min_loss")
        if tiers and tier.payout_krw < tiers[-1].payout_krw:
            raise tctx.fail("payout", "a higher tier must not pay less than a lower one")
        tiers.append(tier)
    return tuple(tiers)


def _build_index(
    rules: tuple[Rule, ...], services: frozenset[str], origin: str
) -> dict[_Key, tuple[Rule, ...]]:
    index: dict[_Key, tuple[Rule, ...]] = {}
    for rule in rules:
        keys = product(
            sorted(rule.services or services),
            rule.kinds or list(EntitlementKind),
            rule.channels or list(BillingChannel),
        )
        for key in keys:
            for other in index.get(key, ()):
                if _incidents_meet(rule.incidents, other.incidents):
                    service, kind, channel = key
                    raise PolicyError(
                        origin, rule.id, "services/kinds/channels",
                        f"overlaps rule {other.id!r} on ({service}, {kind.name}, {channel.name})",
                    )
            index[key] = index.get(key, ()) + (rule,)
    return index


def _incidents_meet(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    return a is None or b is None or bool(a & b)
