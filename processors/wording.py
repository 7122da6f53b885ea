"""The notice templates (processors/templates/notices.yaml): loaded once, validated whole.

`load_templates` checks the file against SPEC before anything is said with it: every section and
key SPEC names, in every locale the file lists, no key SPEC does not name, and for each template
exactly the placeholders SPEC allows (the required ones present, no other). A broken file is a
PolicyError at start-up, never a notice with a hole in it. `say` formats one template.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from processors.errors import PolicyError
from processors.units import LOCALES

# section -> key -> (required placeholders, optional placeholders)
_S = frozenset
SPEC: Mapping[str, Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    "remedy": {
        "EXTEND": (_S({"service", "duration"}), _S()),
        "EXTEND_TOPUP": (_S({"service", "duration", "total"}), _S()),
        "GRANT": (_S({"service", "item", "duration"}), _S()),
        "GRANT_TOPUP": (_S({"service", "item", "duration", "total"}), _S()),
        "CREDIT": (_S({"service", "amount"}), _S()),
        "PAYOUT": (_S({"amount"}), _S({"service"})),
        "PAYOUT_TOPUP": (_S({"amount", "total"}), _S({"service"})),
        "REVERSAL_MONEY": (_S({"service", "amount"}), _S()),
        "REVERSAL_HOURS": (_S({"service", "duration"}), _S()),
    },
    "digest": {
        "issued": (_S({"incident"}), _S()),
        "reversed": (_S({"incident"}), _S()),
        "ids": (_S({"ids"}), _S()),
    },
    "report": {
        **{k: (_S(), _S()) for k in ("covered", "paid", "topped-up", "in-review", "already-in-review",
                                     "no-change", "retracted", "not-covered", "received",
                                     "reconsidered")},
        "too-early": (_S({"started"}), _S()),
        "intake-closed": (_S({"deadline"}), _S()),
    },
    "review": {k: (_S(), _S()) for k in ("approved", "increased", "denied", "unchanged")},
    "services": {},   # free keys, no placeholders
    "items": {},
}
_FREE = frozenset({"services", "items"})


@dataclass(frozen=True, slots=True)
class Templates:
    locales: tuple[str, ...]
    text: Mapping[tuple[str, str, str], str]        # (section, key, locale) -> template
    names: Mapping[tuple[str, str, str], str]       # ("services"|"items", code, locale) -> name

    def say(self, section: str, key: str, locale: str, **values: Any) -> str:
        return self.text[(section, key, locale)].format(**values)

    def name(self, section: str, code: str, locale: str) -> str:
        return self.names.get((section, code, locale), code)


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def parse_templates(doc: Any, origin: str) -> Templates:
    """Validate a templates mapping; PolicyError names the section, key and locale."""
    def fail(where: str, problem: str) -> PolicyError:
        return PolicyError(origin, None, where, problem)

    if not isinstance(doc, Mapping):
        raise fail("<file>", "expected a mapping")
    locales = doc.get("locales")
    if not isinstance(locales, list) or not locales or set(locales) != set(LOCALES):
        raise fail("locales", f"expected exactly {list(LOCALES)}, got {locales!r}")
    unknown = set(doc) - set(SPEC) - {"locales"}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown section")
    text: dict[tuple[str, str, str], str] = {}
    names: dict[tuple[str, str, str], str] = {}
    for section, keys in SPEC.items():
        body = doc.get(section)
        if not isinstance(body, Mapping):
            raise fail(section, "missing section (expected a mapping)")
        if section not in _FREE:
            for key in set(keys) - set(body):
                raise fail(f"{section}.{key}", "missing")
            for key in set(body) - set(keys):
                raise fail(f"{section}.{key}", "unknown key")
        for key, by_locale in body.items():
            where = f"{section}.{key}"
            if not isinstance(by_locale, Mapping) or set(by_locale) != set(LOCALES):
                raise fail(where, f"needs exactly the locales {list(LOCALES)}")
            for locale, template in by_locale.items():
                if not isinstance(template, str) or not template.strip():
                    raise fail(f"{where}.{locale}", "expected a non-empty string")
                try:
                    used = _placeholders(template)
                except ValueError as exc:
                    raise fail(f"{where}.{locale}", f"bad template: {exc}") from None
                required, optional = keys.get(key, (_S(), _S()))
                if required - used:
                    raise fail(f"{where}.{locale}", f"missing placeholders {sorted(required - used)}")
                if used - required - optional:
                    raise fail(f"{where}.{locale}", f"unknown placeholders {sorted(used - required - optional)}")
                (names if section in _FREE else text)[(section, str(key), locale)] = template
    return Templates(tuple(locales), text, names)


@lru_cache(maxsize=1)
def templates() -> Templates:
    """The shipped templates (package data), validated on first use."""
    ref = resources.files("processors").joinpath("templates/notices.yaml")
    return parse_templates(yaml.safe_load(ref.read_text(encoding="utf-8")), "processors/templates/notices.yaml")
