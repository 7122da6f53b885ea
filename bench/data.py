"""Bench inputs: an incident's windows, N entitlement states (fast), damage reports.

Entitlements cycle through a small set of *profiles* (service, kind, channel, status, validity
relative to the outage). Whether a record earns remedies depends only on its profile, never on
its ids, so the number of outputs N records earn is a sum over profiles, each decided once by
processors.entitlements.decide_entitlement (a dry run of the worker's own decisions).
"""
from __future__ import annotations

import itertools
import random
from array import array
from dataclasses import dataclass

from processors.entitlements import decide_entitlement
from processors.model import (BillingChannel, DamageReport, EntitlementKind, EntitlementState,
                              EntitlementStatus, IncidentStatus, OutageWindow, ReportCategory,
                              ReporterKind, Source, to_dict)
from processors.policy import Policy
from processors.windows import IncidentHistory
from streams.wire.codec import Codec

HOUR = 3_600_000
DAY = 24 * HOUR
START = 1665814740000          # 2022-10-15T15:19:00+09:00
INCIDENT = "INC-BENCH-PANGYO"
OUTAGE_HOURS = 127
SERVICES = ("kakaotalk", "emoticon-plus", "melon", "kakaopage", "kakaowebtoon", "kakaotv", "gift", "shopping")

COMBOS = (
    ("emoticon-plus", EntitlementKind.SUBSCRIPTION, BillingChannel.WEB),
    ("emoticon-plus", EntitlementKind.SUBSCRIPTION, BillingChannel.APP_STORE),
    ("emoticon-plus", EntitlementKind.SUBSCRIPTION, BillingChannel.PLAY_STORE),
    ("melon", EntitlementKind.SUBSCRIPTION, BillingChannel.WEB),
    ("melon", EntitlementKind.SUBSCRIPTION, BillingChannel.CARRIER),
    ("kakaopage", EntitlementKind.RENTAL, BillingChannel.WEB),
    ("kakaowebtoon", EntitlementKind.RENTAL, BillingChannel.APP_STORE),
    ("kakaotv", EntitlementKind.VOD_PASS, BillingChannel.WEB),
    ("gift", EntitlementKind.VOUCHER, BillingChannel.NONE),
    ("gift", EntitlementKind.COUPON, BillingChannel.NONE),
    ("shopping", EntitlementKind.POINTS, BillingChannel.NONE),
    ("kakaotalk", EntitlementKind.MEMBERSHIP, BillingChannel.WEB),
)
# valid_until relative to the outage start, in hours: before, inside, after the window
UNTIL_HOURS = (-72, -1, 10, 60, 126, 130, 200, 240)
STATUSES = (EntitlementStatus.ACTIVE, EntitlementStatus.ACTIVE, EntitlementStatus.CANCELED,
            EntitlementStatus.REFUNDED)


def windows() -> tuple[OutageWindow, OutageWindow]:
    """(OPEN revision 1, CLOSED revision 2) of the bench incident."""
    base = dict(incident_id=INCIDENT, services=SERVICES, started_at=START, site="bench")
    opened = OutageWindow(revision=1, status=IncidentStatus.OPEN, ended_at=None,
                          published_at=START + HOUR, **base)
    closed = OutageWindow(revision=2, status=IncidentStatus.CLOSED, ended_at=START + OUTAGE_HOURS * HOUR,
                          published_at=START + (OUTAGE_HOURS + 1) * HOUR, **base)
    return opened, closed


@dataclass(frozen=True)
class Profile:
    template: dict          # plain Avro value; ids and updated_at are overwritten per record

    def state(self, i: int) -> EntitlementState:
        from processors.model import from_dict
        return from_dict(EntitlementState, {**self.template, "entitlement_id": f"e{i}", "user_id": f"u{i // 2}"})


def profiles() -> list[Profile]:
    out = []
    for (service, kind, channel), until_h, status in itertools.product(COMBOS, UNTIL_HOURS, STATUSES):
        period = 30 if kind is EntitlementKind.SUBSCRIPTION else 7
        until = START + until_h * HOUR
        ent = EntitlementState(entitlement_id="e", user_id="u", service=service, kind=kind,
                               billing_channel=channel, status=status, valid_from=until - period * DAY,
                               valid_until=until, price_krw=4900 if period == 30 else 1200,
                               period_days=period, updated_at=START - HOUR)
        out.append(Profile(to_dict(ent)))
    return out


@dataclass
class Entitlements:
    """N encoded entitlement states (key, value) and what they earn."""
    keys: list[bytes]
    values: list[bytes]
    profile_of: array                  # profile index per record

    def __len__(self) -> int:
        return len(self.values)

    def head(self, n: int) -> "Entitlements":
        """The first n records (the same bytes, not copies of the list items)."""
        return self if n >= len(self) else Entitlements(self.keys[:n], self.values[:n], self.profile_of[:n])

    def outputs_earned(self, policy: Policy, revisions: tuple[OutageWindow, ...]) -> int:
        """Remedies + notices the worker issues for these records under `revisions`."""
        per = outputs_per_profile(policy, revisions)
        counts = [0] * len(per)
        for p in self.profile_of:
            counts[p] += 1
        return sum(c * n for c, n in zip(counts, per))


def outputs_per_profile(policy: Policy, revisions: tuple[OutageWindow, ...]) -> list[int]:
    history = IncidentHistory.of(list(revisions))
    src = Source("bench", 0, 0)
    out = []
    for i, prof in enumerate(profiles()):
        d = decide_entitlement(policy, history, prof.state(i), src)
        out.append(len(d.remedies) + len(d.notices))
    return out


def entitlements(codec: Codec, n: int, seed: int = 6) -> Entitlements:
    """N states from a few reused template dicts (ids and updated_at vary), encoded with
    codec.encode(check=False): the same wire format the workers read, minus the validation pass."""
    profs = [p.template for p in profiles()]
    rnd = random.Random(seed)
    picks = array("H", (rnd.randrange(len(profs)) for _ in range(n)))
    encode = codec.encode
    keys: list[bytes] = []
    values: list[bytes] = []
    for i, p in enumerate(picks):
        d = profs[p]
        eid = f"e{i}"
        d["entitlement_id"] = eid
        d["user_id"] = f"u{i >> 1}"
        d["updated_at"] = START - HOUR - (i % 97) * 60_000
        keys.append(eid.encode())
        values.append(encode("entitlement_state", d, check=False))
    return Entitlements(keys, values, picks)


def check_sample(codec: Codec, ents: Entitlements, policy: Policy) -> None:
    """A few records decode and validate as the worker will see them (they were encoded unchecked)."""
    from processors.validate import validate_entitlement
    for i in sorted({0, len(ents) // 2, len(ents) - 1}):
        validate_entitlement(codec.decode_obj("entitlement_state", ents.values[i]), policy)


# ------------------------------------------------------------------------------ reports

def reports(prefix: str, n: int, seed: int = 11) -> list[DamageReport]:
    """N reports about the bench incident; every one is triaged (one report-level notice each)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        business = rnd.random() < 0.4
        reporter = f"{prefix}b{i}" if business else f"{prefix}u{i}"
        loss = rnd.choice([None, 120_000, 300_000, 420_000, 800_000]) if business else None
        category = (ReportCategory.BUSINESS_LOSS if business
                    else rnd.choice([ReportCategory.PAID_SERVICE, ReportCategory.FREE_SERVICE, ReportCategory.OTHER]))
        out.append(DamageReport(
            report_id=f"{prefix}r{i}", reporter_id=reporter,
            reporter_kind=ReporterKind.BUSINESS if business else ReporterKind.INDIVIDUAL,
            business_id=f"BRN-{reporter}" if business else None, service=rnd.choice(SERVICES),
            incident_id=INCIDENT, category=category, claimed_loss_krw=loss,
            occurred_at=START + rnd.randint(1, 100) * HOUR, title="bench", body="bench body",
            contact_email=None, contact_phone=None, submitted_at=START + (OUTAGE_HOURS + 24) * HOUR))
    return out
