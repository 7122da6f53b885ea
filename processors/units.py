"""Human units for notices: durations in days or hours, won with separators, local dates.

Pure: an instant is epoch milliseconds handed in, the time zone is a name from the policy
(zoneinfo reads the tz database, which is data, not a clock).

| value | ko | en |
|---|---|---|
| 72 hours | 3일 | 3 days |
| 2160 hours | 90일 | 90 days |
| 30 hours | 30시간 | 30 hours |
| 1 hour | 1시간 | 1 hour |
| 490 won | 490원 | 490 won |
| 20000 won | 20,000원 | 20,000 won |
| 2022-11-17T14:30Z, Asia/Seoul | 2022년 11월 17일 23:30 (KST) | 17 November 2022, 23:30 KST |
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCALES = ("ko", "en")
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")


def normalize_locale(value: str | None) -> str | None:
    """"ko", "ko-KR", "ko_KR", "EN-us" -> the language we write ("ko", "en"); None when not ours."""
    if not value:
        return None
    lang = value.replace("_", "-").split("-")[0].lower()
    return lang if lang in LOCALES else None


def duration(hours: int, locale: str) -> str:
    """Whole days when the hours make whole days, else hours."""
    if hours % 24 == 0 and hours != 0:
        days = hours // 24
        return f"{days:,}일" if locale == "ko" else f"{days:,} day{'s' if days != 1 else ''}"
    return f"{hours:,}시간" if locale == "ko" else f"{hours:,} hour{'s' if hours != 1 else ''}"


def won(amount: int, locale: str) -> str:
    return f"{amount:,}원" if locale == "ko" else f"{amount:,} won"


@lru_cache(maxsize=32)
def zone(name: str) -> ZoneInfo:
    """The tz database zone `name`; ValueError when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def local_time(at_ms: int, zone_name: str, locale: str) -> str:
    """An instant as a reader in `zone_name` reads it, to the minute, with the zone's abbreviation."""
    t = dt.datetime.fromtimestamp(at_ms / 1000, tz=zone(zone_name))
    abbr = t.strftime("%Z")
    if locale == "ko":
        return f"{t.year}년 {t.month}월 {t.day}일 {t:%H:%M} ({abbr})"
    return f"{t.day} {_EN_MONTHS[t.month - 1]} {t.year}, {t:%H:%M} {abbr}"


def notice_settings(body: dict, fail, default_zone: str = "UTC") -> tuple[str, str]:
    """(default locale, time zone) of a policy's `notices:` mapping; `fail(field, problem)`
    makes the error. Defaults: English, and `default_zone` (the policy's `timezone`)."""
    raw_locale = body.get("locale", "en")
    locale = normalize_locale(raw_locale) if isinstance(raw_locale, str) else None
    if locale is None:
        raise fail("notices.locale", f"expected one of {list(LOCALES)}, got {raw_locale!r}")
    name = body.get("time_zone", default_zone)
    try:
        zone(name if isinstance(name, str) else "")
    except ValueError:
        raise fail("notices.time_zone", f"not a tz database zone: {name!r}; write e.g. Asia/Seoul") from None
    return locale, name
