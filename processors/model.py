"""Domain records mirroring the Avro schemas, plus their plain-dict conversion.

Field names and order here are the wire contract (DESIGN §2): the Avro codec in
`streams/` calls `to_dict` / `from_dict`, so both deal only in JSON-ish values:
enums travel as their names, tuples as lists, nested records as dicts.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from processors.errors import InvalidRecord


class IncidentStatus(str, enum.Enum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    RETRACTED = "RETRACTED"


class EntitlementKind(str, enum.Enum):
    SUBSCRIPTION = "SUBSCRIPTION"
    RENTAL = "RENTAL"
    VOD_PASS = "VOD_PASS"
    VOUCHER = "VOUCHER"
    COUPON = "COUPON"
    POINTS = "POINTS"
    MEMBERSHIP = "MEMBERSHIP"


class BillingChannel(str, enum.Enum):
    WEB = "WEB"
    APP_STORE = "APP_STORE"
    PLAY_STORE = "PLAY_STORE"
    CARRIER = "CARRIER"
    NONE = "NONE"


class EntitlementStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REFUNDED = "REFUNDED"
    REDEEMED = "REDEEMED"


class ReporterKind(str, enum.Enum):
    INDIVIDUAL = "INDIVIDUAL"
    BUSINESS = "BUSINESS"


class ReportCategory(str, enum.Enum):
    PAID_SERVICE = "PAID_SERVICE"
    FREE_SERVICE = "FREE_SERVICE"
    BUSINESS_LOSS = "BUSINESS_LOSS"
    OTHER = "OTHER"


class Action(str, enum.Enum):
    EXTEND = "EXTEND"
    CREDIT = "CREDIT"
    PAYOUT = "PAYOUT"
    GRANT = "GRANT"
    REVERSAL = "REVERSAL"


class SubjectKind(str, enum.Enum):
    ENTITLEMENT = "ENTITLEMENT"
    REPORT = "REPORT"
    USER = "USER"


class ReviewReason(str, enum.Enum):
    LARGE_BUSINESS_LOSS = "LARGE_BUSINESS_LOSS"
    BUSINESS_LOSS_UNSTATED = "BUSINESS_LOSS_UNSTATED"
    FREE_SERVICE = "FREE_SERVICE"
    PAID_SERVICE_UNCOVERED = "PAID_SERVICE_UNCOVERED"
    OTHER = "OTHER"


class NoticeKind(str, enum.Enum):
    REMEDY_ISSUED = "REMEDY_ISSUED"
    REMEDY_REVERSED = "REMEDY_REVERSED"
    REPORT_COVERED = "REPORT_COVERED"
    REPORT_IN_REVIEW = "REPORT_IN_REVIEW"
    REPORT_REJECTED = "REPORT_REJECTED"
    REPORT_NO_CHANGE = "REPORT_NO_CHANGE"
    REPORT_RECEIVED = "REPORT_RECEIVED"  # received while the incident is OPEN; decided at its close
    REVIEW_DECIDED = "REVIEW_DECIDED"    # a reviewer decided a case under review


class Verdict(str, enum.Enum):
    APPROVE = "APPROVE"
    DENY = "DENY"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a triggering record was read from (lineage)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class OutageWindow:
    incident_id: str
    revision: int
    status: IncidentStatus
    services: tuple[str, ...]
    started_at: int
    ended_at: int | None
    site: str
    published_at: int


@dataclass(frozen=True, slots=True)
class EntitlementState:
    entitlement_id: str
    user_id: str
    service: str
    kind: EntitlementKind
    billing_channel: BillingChannel
    status: EntitlementStatus
    valid_from: int
    valid_until: int
    price_krw: int
    period_days: int
    updated_at: int
    locale: str | None = None   # the user's language for notices (BCP 47, e.g. ko-KR); None: the policy's


@dataclass(frozen=True, slots=True)
class DamageReport:
    report_id: str
    reporter_id: str
    reporter_kind: ReporterKind
    business_id: str | None
    service: str
    incident_id: str | None
    category: ReportCategory
    claimed_loss_krw: int | None
    occurred_at: int | None
    title: str
    body: str
    contact_email: str | None
    contact_phone: str | None
    submitted_at: int
    locale: str | None = None   # the reporter's language for notices; None: the policy's


@dataclass(frozen=True, slots=True)
class RemedyAction:
    remedy_id: str
    incident_id: str
    rule_id: str
    policy_version: str
    action: Action
    user_id: str
    subject_kind: SubjectKind
    subject_id: str
    service: str
    extend_hours: int | None
    amount_krw: int | None
    supersedes: str | None
    decided_at: int
    source: Source


@dataclass(frozen=True, slots=True)
class ReviewCase:
    """A case for human review: the only record that carries personal data."""

    review_id: str
    case_id: str
    incident_id: str | None
    reporter_id: str
    reporter_kind: ReporterKind
    business_id: str | None
    service: str
    category: ReportCategory
    claimed_loss_krw: int | None
    reason: ReviewReason
    report_ids: tuple[str, ...]
    title: str
    body: str
    contact_email: str | None
    contact_phone: str | None
    policy_version: str
    decided_at: int
    source: Source


@dataclass(frozen=True, slots=True)
class UserNotice:
    """What to tell a user and why; `message` is a fixed template, never report text."""

    notice_id: str
    user_id: str
    incident_id: str | None
    kind: NoticeKind
    remedy_ids: tuple[str, ...]
    report_id: str | None
    message: str
    policy_version: str
    decided_at: int
    source: Source
    locale: str | None = None   # the language `message` is written in (None: before #16, English)


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """A reviewer's decision on a case under review (input; keyed by the reporter, see
    processors.decisions). `note` is the reviewer's free text: it goes nowhere else."""

    case_id: str
    review_id: str | None
    reporter_id: str
    verdict: Verdict
    amount_krw: int | None      # APPROVE: the additional compensation approved for the case, in won
    reviewer_id: str
    note: str | None
    decided_at: int


@dataclass(frozen=True, slots=True)
class IncidentApproval:
    """An operator's release of an incident revision the policy's approval limits hold
    (processors.approval); `remedies` and `amount_krw` are the cost the operator saw."""

    incident_id: str
    revision: int
    approved_by: str
    approved_at: int  # epoch ms
    policy_version: str
    remedies: int
    amount_krw: int


class Outcome(enum.StrEnum):
    """How a processor call ended, counted per input topic as a recorded no-op or a result."""
    NO_RULE = "no-rule"
    NOT_ELIGIBLE = "not-eligible"
    PENDING = "pending"
    REMEDIED = "remedied"
    RETRACTED = "retracted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    IN_REVIEW = "in-review"
    NO_CHANGE = "no-change"
    PAID = "paid"
    COVERED = "covered"


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything one processor call decided. `outcome` names the result for no-op recording."""

    remedies: tuple[RemedyAction, ...] = ()
    reviews: tuple[ReviewCase, ...] = ()
    notices: tuple[UserNotice, ...] = ()
    outcome: Outcome = Outcome.NO_RULE


Record = (Source | OutageWindow | EntitlementState | DamageReport | RemedyAction | ReviewCase | UserNotice
          | ReviewDecision)
R = TypeVar("R")

# Conversions are compiled once per record class from its type hints: the codec converts every
# record of the pipeline, and inspecting hints per field per record cost ~15-25% of a worker.
Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Layout:
    """How to convert one record class: its field names in order, a getter returning all of
    their values as one tuple, and the (position, converter) of only the fields needing one.

    Fetching every field in one C-level attrgetter/itemgetter call and converting only the
    few enum/nested/tuple fields halves the cost of a per-field Python loop.
    """

    names: tuple[str, ...]
    name_set: frozenset[str]
    get_all: Callable[[Any], tuple]
    converts: tuple[tuple[int, Convert], ...]
    defaults: dict[str, Any]    # fields a record may leave out (added later, with a default)


_TO_TYPED: dict[type, _Layout] = {}
_TO_PLAIN: dict[type, _Layout] = {}


def _typed_converter(hint: Any) -> Convert | None:
    """A function turning a plain value into `hint`'s type, or None when it is already right."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        inner = _typed_converter([a for a in typing.get_args(hint) if a is not type(None)][0])
        return None if inner is None else (lambda v: None if v is None else inner(v))
    if origin is tuple:
        item = _typed_converter(typing.get_args(hint)[0])
        return tuple if item is None else (lambda v: tuple(item(x) for x in v))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        # The member table itself: `hint[v]` looks v up there too, raising the same KeyError.
        members = hint._member_map_
        return lambda v: v if isinstance(v, hint) else members[v]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda v: v if isinstance(v, hint) else from_dict(hint, v)
    return None


def _plain_converter(hint: Any) -> Convert | None:
    """The inverse: a typed value to its plain form (enum names, lists, dicts), or None."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        inner = _plain_converter([a for a in typing.get_args(hint) if a is not type(None)][0])
        return None if inner is None else (lambda v: None if v is None else inner(v))
    if origin is tuple:
        item = _plain_converter(typing.get_args(hint)[0])
        return list if item is None else (lambda v: [item(x) for x in v])
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        # `_name_` is the plain attribute behind the `name` property, read without a Python call.
        return operator.attrgetter("_name_")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return to_dict
    return None


def _compile(cache: dict[type, _Layout], cls: type, make: Callable[[Any], Convert | None],
             getter: Callable[..., Callable[[Any], Any]]) -> _Layout:
    hints = typing.get_type_hints(cls)
    names = tuple(f.name for f in dataclasses.fields(cls))
    converts = tuple((i, conv) for i, name in enumerate(names) if (conv := make(hints[name])) is not None)
    # attrgetter/itemgetter of one name return the bare value, not a 1-tuple.
    get_all = getter(*names) if len(names) > 1 else (lambda obj, one=getter(*names): (one(obj),))
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    layout = cache[cls] = _Layout(names, frozenset(names), get_all, converts, defaults)
    return layout


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass record as a dict of plain values, fields in declaration order."""
    cls = type(obj)
    layout = _TO_PLAIN.get(cls) or _compile(_TO_PLAIN, cls, _plain_converter, operator.attrgetter)
    values = layout.get_all(obj)
    if layout.converts:
        values = list(values)
        for i, conv in layout.converts:
            values[i] = conv(values[i])
    return dict(zip(layout.names, values))


def from_dict(cls: type[R], d: typing.Mapping[str, Any]) -> R:
    """Inverse of `to_dict`. A dict that does not fit `cls` raises InvalidRecord."""
    layout = _TO_TYPED.get(cls) or _compile(_TO_TYPED, cls, _typed_converter, operator.itemgetter)
    if d.keys() != layout.name_set:
        names = layout.names
        unknown = set(d) - set(names)
        if unknown:
            raise InvalidRecord(f"{cls.__name__}: unknown fields {sorted(unknown)}")
        if all(n in d or n in layout.defaults for n in names):
            return from_dict(cls, {**layout.defaults, **d})    # written before those fields existed
        raise InvalidRecord(f"{cls.__name__}: missing fields {[n for n in names if n not in d]}")
    values = layout.get_all(d)
    try:
        if layout.converts:
            values = list(values)
            for i, conv in layout.converts:
                values[i] = conv(values[i])
        return cls(*values)
    except KeyError as exc:  # an enum name the contract does not know
        raise InvalidRecord(f"{cls.__name__}: unknown enum symbol {exc}") from None
