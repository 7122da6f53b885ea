"""The reference incident: the 15 October 2022 SK C&C Pangyo fire, as event streams.

`generate(seed, scale)` builds what the platform services would have published: three revisions
of the outage window, a few thousand entitlement states with the mixes of the affected services,
the damage reports of the intake channel, and a handful of poison records. It is a pure function
of its arguments (a seeded `random.Random`, no clock, no network), so the same seed and scale
give byte-identical records and a demo, a test and a replay all see the same incident.

Values are plain Avro (timestamps as int epoch millis), ready for `Codec.encode`. Sources for the
numbers (127 hours, 105,116 reports of which 17% paid, business tiers) are in shared/seeds/.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

from streams.wire.codec import Codec
from streams.dev.poison import malformed
from streams.errors import ScenarioError

KST = timezone(timedelta(hours=9))
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=KST).timestamp()) * 1000


INCIDENT = "INC-20221015-PANGYO"
SITE = "SK C&C Pangyo"
SERVICES = ["kakaotalk", "emoticon-plus", "melon", "kakaopage", "kakaowebtoon", "kakaotv",
            "gift", "shopping", "daum", "kakao-t"]
STARTED = _ms(2022, 10, 15, 15, 19)
ENDED_FIRST = STARTED + 120 * HOUR      # the first announcement
ENDED_FINAL = STARTED + 127 * HOUR      # amended a day later
INTAKE_OPENS = _ms(2022, 10, 19, 10, 0)
INTAKE_LAST = _ms(2022, 11, 6, 23, 59)
BUSINESS_CLOSES = ENDED_FINAL + 28 * DAY  # the reference policy: 14 days + 14 more for businesses

BASE_ENTITLEMENTS, BASE_REPORTS = 3_000, 1_500
PAID_SHARE, BUSINESS_SHARE, FREE_SHARE = 0.17, 0.20, 0.50
TIER_LOW, TIER_HIGH = 300_000, 500_000

Pair = tuple[str, dict | None]
# the `locale` of the n-th entitlement state and report, cyclically (None: a producer before #16)
LOCALES = ("ko-KR", "ko-KR", "ko", "en-US", None, "ko-KR", "ko-KR", "en", "ko-KR", None)


@dataclass(frozen=True)
class Scenario:
    seed: int
    scale: float
    windows: list[Pair]
    entitlements: list[Pair]
    reports: list[Pair]
    malformed: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts that describe the scenario (for the demo's banner and for tests)."""
        ents = [v for _, v in self.entitlements if v is not None]
        reps = [v for _, v in self.reports if v is not None]
        business = [r for r in reps if r["reporter_kind"] == "BUSINESS"]
        repeats = Counter((r["reporter_id"], r["business_id"]) for r in reps)
        return {
            "windows": len(self.windows),
            "entitlements": len(ents),
            "entitlement_ids": len({e["entitlement_id"] for e in ents}),
            "entitlements_by_service": dict(sorted(Counter(e["service"] for e in ents).items())),
            "reports": len(reps),
            "individual": len(reps) - len(business),
            "business": len(business),
            "by_category": dict(sorted(Counter(r["category"] for r in reps).items())),
            "business_tiers": dict(sorted(Counter(_tier(r["claimed_loss_krw"]) for r in business).items())),
            "business_amendments": sum(n - 1 for (_, b), n in repeats.items() if b is not None),
            "individual_repeats": sum(n - 1 for (_, b), n in repeats.items() if b is None),
            "late_business": sum(r["submitted_at"] > BUSINESS_CLOSES for r in business),
            "without_incident_id": sum(r["incident_id"] is None for r in reps),
            "malformed": len(self.malformed),
        }


def _tier(loss: int | None) -> str:
    if loss is None:
        return "unstated"
    return "under_300k" if loss < TIER_LOW else "300k_to_500k" if loss <= TIER_HIGH else "over_500k"


# ----------------------------------------------------------------------------- windows

def _windows() -> list[Pair]:
    def revision(n: int, status: str, ended: int | None, published: int) -> Pair:
        return INCIDENT, {"incident_id": INCIDENT, "revision": n, "status": status,
                          "services": list(SERVICES), "started_at": STARTED, "ended_at": ended,
                          "site": SITE, "published_at": published}
    first_notice = ENDED_FIRST + 30 * MINUTE
    return [revision(1, "OPEN", None, STARTED + 25 * MINUTE),
            revision(2, "CLOSED", ENDED_FIRST, first_notice),
            revision(3, "CLOSED", ENDED_FINAL, first_notice + DAY)]


# ----------------------------------------------------------------------------- entitlements

@dataclass(frozen=True)
class _Profile:
    service: str
    share: float
    kinds: Sequence[tuple[str, float]]
    channels: Sequence[tuple[str, float]]
    prices: Sequence[int]
    periods: Sequence[int]
    timing: str  # subscription | rental | expiring


PROFILES = [
    _Profile("emoticon-plus", .20, [("SUBSCRIPTION", 1)],
             [("WEB", .55), ("APP_STORE", .25), ("PLAY_STORE", .20)], [3_900, 4_900], [30], "subscription"),
    _Profile("melon", .20, [("SUBSCRIPTION", 1)],
             [("WEB", .35), ("APP_STORE", .15), ("PLAY_STORE", .25), ("CARRIER", .25)],
             [7_590, 8_690, 10_900], [30], "subscription"),
    _Profile("kakaopage", .12, [("RENTAL", 1)], [("NONE", 1)], [100, 200, 300, 500], [3, 4, 5, 6, 7], "rental"),
    _Profile("kakaowebtoon", .10, [("RENTAL", 1)], [("NONE", 1)], [200, 300, 500], [3, 5, 7], "rental"),
    _Profile("kakaotv", .06, [("VOD_PASS", 1)], [("WEB", .5), ("APP_STORE", .2), ("PLAY_STORE", .3)],
             [1_650, 2_200, 3_300], [7, 30], "subscription"),
    _Profile("gift", .12, [("VOUCHER", .6), ("COUPON", .25), ("POINTS", .15)], [("NONE", 1)],
             [3_000, 4_500, 5_000, 10_000, 20_000, 30_000, 50_000], [30, 60, 90, 365], "expiring"),
    _Profile("shopping", .08, [("COUPON", .5), ("POINTS", .3), ("VOUCHER", .2)], [("NONE", 1)],
             [1_000, 2_000, 3_000, 5_000, 10_000], [7, 14, 30, 90], "expiring"),
    _Profile("kakaotalk", .12, [("MEMBERSHIP", 1)], [("WEB", .3), ("APP_STORE", .3), ("PLAY_STORE", .4)],
             [990], [30], "subscription"),
]
ENTITLEMENT_FIELDS = ["entitlement_id", "user_id", "service", "kind", "billing_channel", "status",
                      "valid_from", "valid_until", "price_krw", "period_days", "updated_at"]


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def _apportion(total: int, shares: Sequence[float]) -> list[int]:
    """Whole counts in proportion to `shares` that add up to `total` (largest remainder)."""
    exact = [total * s / sum(shares) for s in shares]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _timing(rng: random.Random, p: _Profile, period: int) -> tuple[int, int, str, int]:
    """(valid_from, valid_until, status, updated_at) placed before, across, inside or after the window."""
    length = period * DAY
    r = rng.random()
    if p.timing == "rental":
        start = STARTED + rng.randrange(-9 * DAY, 6 * DAY, MINUTE)
        end = start + length
        status = _pick(rng, [("EXPIRED", .8), ("ACTIVE", .2)] if end < STARTED
                       else [("ACTIVE", .93), ("REFUNDED", .04), ("CANCELED", .03)])
        return start, end, status, start
    if p.timing == "expiring":
        if r < .06:    # expires in the hours the amended window added
            end = rng.randrange(ENDED_FIRST, ENDED_FINAL, MINUTE)
        elif r < .22:  # expires during the outage
            end = rng.randrange(STARTED, ENDED_FINAL, MINUTE)
        elif r < .32:  # expired before it
            end = STARTED - rng.randrange(HOUR, 60 * DAY, MINUTE)
        else:          # most outlive it
            end = ENDED_FINAL + rng.randrange(HOUR, 300 * DAY, MINUTE)
        start = end - length
        status = _pick(rng, [("ACTIVE", .80), ("REDEEMED", .12), ("REFUNDED", .03), ("EXPIRED", .05)])
        if end < STARTED and status == "ACTIVE":
            status = "EXPIRED"
        updated = end if status == "EXPIRED" else start + rng.randrange(0, length // 2, MINUTE)
        return start, end, status, updated
    if r < .08:        # lapsed before the fire
        end = STARTED - rng.randrange(HOUR, 40 * DAY, MINUTE)
        start = end - length
        status = _pick(rng, [("EXPIRED", .7), ("CANCELED", .2), ("REFUNDED", .1)])
        return start, end, status, end if status == "EXPIRED" else start + length // 3
    if r < .15:        # bought after services came back
        start = ENDED_FINAL + rng.randrange(HOUR, 20 * DAY, MINUTE)
    elif r < .22:      # bought during the outage
        start = rng.randrange(STARTED, ENDED_FINAL, MINUTE)
    else:              # running when the fire started
        start = STARTED - rng.randrange(MINUTE, length - MINUTE, MINUTE)
    status = _pick(rng, [("ACTIVE", .90), ("CANCELED", .07), ("REFUNDED", .03)])
    updated = start if status == "ACTIVE" else start + rng.randrange(HOUR, length // 2, MINUTE)
    return start, start + length, status, updated


def _newer_state(rng: random.Random, e: dict) -> dict:
    """A later state of the same entitlement: canceled, refunded, or renewed."""
    later = e["updated_at"] + rng.randrange(HOUR, 10 * DAY, MINUTE)
    change = rng.choice(["cancel", "refund", "renew"])
    if change == "renew" and e["kind"] == "SUBSCRIPTION" and e["status"] == "ACTIVE":
        length = e["period_days"] * DAY
        return dict(e, valid_from=e["valid_until"], valid_until=e["valid_until"] + length,
                    updated_at=max(later, e["valid_until"]))
    return dict(e, status="REFUNDED" if change == "refund" else "CANCELED", updated_at=later)


def _entitlements(rng: random.Random, n: int) -> tuple[list[Pair], list[str]]:
    n_users = max(1, int(n * 0.65))
    slots = [p for p, k in zip(PROFILES, _apportion(n, [p.share for p in PROFILES])) for _ in range(k)]
    rng.shuffle(slots)
    states = []
    for i, p in enumerate(slots, start=1):
        period = rng.choice(p.periods)
        start, end, status, updated = _timing(rng, p, period)
        states.append({"entitlement_id": f"ent-{i:07d}", "user_id": f"u-{rng.randrange(n_users) + 1:07d}",
                       "service": p.service, "kind": _pick(rng, p.kinds),
                       "billing_channel": _pick(rng, p.channels), "status": status,
                       "valid_from": start, "valid_until": end, "price_krw": rng.choice(p.prices),
                       "period_days": period, "updated_at": updated})
    for i in sorted(rng.sample(range(len(states)), max(1, n // 50)) if states else []):
        states.append(_newer_state(rng, states[i]))
    states.sort(key=lambda e: (e["updated_at"], e["entitlement_id"]))
    holders = list(dict.fromkeys(e["user_id"] for e in states))
    return [(e["entitlement_id"], {k: e[k] for k in ENTITLEMENT_FIELDS}) for e in states], holders


# ----------------------------------------------------------------------------- reports

REPORT_FIELDS = ["report_id", "reporter_id", "reporter_kind", "business_id", "service", "incident_id",
                 "category", "claimed_loss_krw", "occurred_at", "title", "body", "contact_email",
                 "contact_phone", "submitted_at"]
TEXTS = {
    "PAID_SERVICE": [("유료 구독 이용 불가", "결제한 이용권을 장애 기간 동안 쓰지 못했습니다."),
                     ("Paid pass unusable", "I paid for a subscription and could not use it for days."),
                     ("대여 기간 만료", "대여한 작품을 장애 중에 보지 못하고 기간이 끝났습니다."),
                     ("선물 쿠폰 만료", "받은 쿠폰이 장애 기간에 만료되었습니다.")],
    "FREE_SERVICE": [("카카오톡 먹통", "메시지를 보내지 못해 약속에 늦었습니다."),
                     ("Could not log in", "Messages and login failed for most of the weekend."),
                     ("다음 메일 접속 불가", "업무 메일을 확인하지 못했습니다.")],
    "OTHER": [("기타 불편", "여러 서비스가 동시에 멈춰 불편했습니다."),
              ("General inconvenience", "Several apps stopped working at once.")],
    "BUSINESS_LOSS": [("주문 누락", "카카오톡 주문 알림이 오지 않아 주문을 놓쳤습니다."),
                      ("예약 취소", "예약 확인 메시지가 나가지 않아 손님이 오지 않았습니다."),
                      ("Lost taxi fares", "Kakao T dispatch was down, no calls for two days."),
                      ("선물하기 매출 감소", "선물하기 판매가 중단되어 매출이 줄었습니다.")],
}
PAID_SERVICES = ["emoticon-plus", "melon", "kakaopage", "kakaowebtoon", "kakaotv", "gift", "shopping"]
FREE_SERVICES = [("kakaotalk", .6), ("daum", .25), ("kakao-t", .15)]
BUSINESS_SERVICES = [("kakaotalk", .6), ("kakao-t", .2), ("gift", .1), ("shopping", .1)]
FRESH_INDIVIDUALS, BUSINESS_OWNERS = 3_000_000, 5_000_000  # user ids that hold no entitlement


def _submitted(rng: random.Random) -> int:
    """Most reports came in the first days after the channel opened on 19 October."""
    while True:
        offset = int(rng.expovariate(1 / (4 * DAY)))
        if offset <= INTAKE_LAST - INTAKE_OPENS:
            return INTAKE_OPENS + offset // 1000 * 1000


def _report(rng: random.Random, reporter: str, category: str, service: str, submitted: int,
            business_id: str | None = None, loss: int | None = None) -> dict:
    incident = INCIDENT if rng.random() < .85 else None  # the rest only say what and when
    occurred = rng.randrange(STARTED, ENDED_FIRST, MINUTE) if incident is None or rng.random() < .5 else None
    title, body = rng.choice(TEXTS[category])
    n = rng.randrange(100_000)
    return {"report_id": "", "reporter_id": reporter,
            "reporter_kind": "INDIVIDUAL" if business_id is None else "BUSINESS",
            "business_id": business_id, "service": service, "incident_id": incident,
            "category": category, "claimed_loss_krw": loss, "occurred_at": occurred,
            "title": title, "body": body,
            "contact_email": f"user{n:05d}@example.com" if rng.random() < .8 else None,
            "contact_phone": f"010-0000-{n % 10_000:04d}" if rng.random() < .7 else None,
            "submitted_at": submitted}


def _losses(rng: random.Random, n: int) -> list[int | None]:
    """Claimed losses over the three tiers, with the exact boundaries and a few left blank."""
    fixed: list[int | None] = ([None] * max(2, n // 50) + [TIER_LOW] * max(2, n // 100)
                               + [TIER_HIGH] * max(2, n // 100) + [TIER_LOW - 1, TIER_HIGH + 1])
    out = fixed[:n]
    while len(out) < n:
        r = rng.random()
        low, high = (10, 300) if r < .45 else (300, 501) if r < .75 else (501, 5_000)
        out.append(rng.randrange(low, high) * 1000)
    rng.shuffle(out)
    return out


def _amended_loss(rng: random.Random, loss: int, turn: int) -> int:
    """A later claim: up a tier, over 500,000, lower, or the same again (a plain duplicate)."""
    tier = _tier(loss)
    moves = {"under_300k": ["up", "over", "lower", "same"], "300k_to_500k": ["over", "lower", "same"],
             "over_500k": ["higher", "lower", "same"]}[tier]
    move = moves[turn % len(moves)]
    if move == "up":
        return rng.randrange(300, 501) * 1000
    if move in ("over", "higher"):
        return max(loss, TIER_HIGH) + rng.randrange(1, 2_000) * 1000
    if move == "lower":
        return max(1_000, loss // 2000 * 1000)
    return loss


def _reports(rng: random.Random, n: int, paid_holders: list[tuple[str, str]], holders: list[str]) -> list[Pair]:
    n_business = round(n * BUSINESS_SHARE)
    n_late = min(n_business, max(3, round(n * .004)))
    n_amend = min(n_business - n_late, round(n * .04))
    n_dup = round(n * .01)
    n_paid, n_free = round(n * PAID_SHARE), round(n * FREE_SHARE)
    n_other = max(0, n - n_business - n_dup - n_paid - n_free)
    fresh = iter(range(FRESH_INDIVIDUALS, BUSINESS_OWNERS))  # each fresh reporter reports once
    paid = rng.sample(paid_holders, len(paid_holders))
    others = rng.sample(holders, len(holders))
    used: set[str] = set()  # one report per person; repeats are made on purpose below

    def take(pool: list, user: Callable[[Any], str] = lambda x: x) -> Any:
        while pool:
            item = pool.pop()
            if user(item) not in used:
                used.add(user(item))
                return item
        return None

    out: list[dict] = []
    for _ in range(n_paid):  # most paid-service reporters hold something, some do not
        holder = take(paid, lambda p: p[0]) if rng.random() < .75 else None
        user, service = holder or (f"u-{next(fresh):07d}", rng.choice(PAID_SERVICES))
        out.append(_report(rng, user, "PAID_SERVICE", service, _submitted(rng)))
    for category, count in (("FREE_SERVICE", n_free), ("OTHER", n_other)):
        for _ in range(count):
            user = (take(others) if rng.random() < .4 else None) or f"u-{next(fresh):07d}"
            service = _pick(rng, FREE_SERVICES) if category == "FREE_SERVICE" else rng.choice(SERVICES)
            out.append(_report(rng, user, category, service, _submitted(rng)))
    individual = [r for r in out if r["submitted_at"] < INTAKE_LAST - 3 * DAY]
    for r in rng.sample(individual, min(n_dup, len(individual))):  # sent twice
        out.append(dict(r, submitted_at=r["submitted_at"] + rng.randrange(HOUR, 3 * DAY, 1000)))
    business = []
    n_base = n_business - n_late - n_amend
    late_losses = [rng.randrange(10, 900) * 1000 for _ in range(n_late)]
    for j, loss in enumerate(_losses(rng, n_base) + late_losses):
        late = j >= n_base
        submitted = BUSINESS_CLOSES + rng.randrange(HOUR, 12 * DAY, 1000) if late else _submitted(rng)
        business.append(_report(rng, f"u-{BUSINESS_OWNERS + j:07d}", "BUSINESS_LOSS",
                                _pick(rng, BUSINESS_SERVICES), submitted,
                                f"{rng.randrange(100, 1000)}-{rng.randrange(10, 100)}-{j:05d}", loss))
    amendable = [r for r in business[:n_base]
                 if r["claimed_loss_krw"] is not None and r["submitted_at"] < INTAKE_LAST - 4 * DAY]
    for turn, r in enumerate(rng.sample(amendable, min(n_amend, len(amendable)))):
        out.append(dict(r, claimed_loss_krw=_amended_loss(rng, r["claimed_loss_krw"], turn),
                        title="[정정] " + r["title"],
                        submitted_at=r["submitted_at"] + rng.randrange(2 * HOUR, 4 * DAY, 1000)))
    out.extend(business)
    order = sorted(range(len(out)), key=lambda i: (out[i]["submitted_at"], i))
    pairs = []
    for seq, i in enumerate(order, start=1):
        r = dict(out[i], report_id=f"rpt-{seq:07d}")
        pairs.append((r["reporter_id"], {k: r[k] for k in REPORT_FIELDS}))
    return pairs


# ----------------------------------------------------------------------------- entry point

def generate(seed: int = 1015, scale: float = 1.0, codec: Codec | None = None) -> Scenario:
    """The Pangyo incident at `scale` × (3,000 entitlements, 1,500 reports), reproducibly.

    `codec` builds the Avro poison records; without one the repository's schemas are loaded
    (the only file read; nothing else touches the outside world).
    """
    if scale <= 0:
        raise ScenarioError(f"scale must be positive, got {scale}")
    if codec is None:
        from streams.settings import ROOT
        codec = Codec.from_dir(ROOT / "schemas")
    rng = random.Random(seed)
    windows = _windows()
    entitlements, holders = _entitlements(random.Random(rng.getrandbits(64)),
                                          max(1, round(BASE_ENTITLEMENTS * scale)))
    paid_holders = list(dict.fromkeys((v["user_id"], v["service"]) for _, v in entitlements
                                      if v is not None and v["price_krw"] > 0))
    reports = _reports(random.Random(rng.getrandbits(64)), max(1, round(BASE_REPORTS * scale)),
                       paid_holders, holders)
    for pairs in (entitlements, reports):   # mostly Korean, some English, some producers before #16
        for i, (_, v) in enumerate(pairs):
            if v is not None:
                v["locale"] = LOCALES[i % len(LOCALES)]
    return Scenario(seed, scale, windows, entitlements, reports,
                    malformed(codec, windows, entitlements, reports))
