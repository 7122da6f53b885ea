"""Reading a policy file's values, each error naming the file, the rule and the field."""
from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Any, Mapping

from processors.errors import PolicyError

_DURATION = re.compile(r"^([1-9][0-9]*)([hd])$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class Ctx:
    """Where we are in the file, so every error names file, rule and field."""

    def __init__(self, origin: str, rule: str | None = None) -> None:
        self.origin = origin
        self.rule = rule

    def fail(self, fld: str, problem: str) -> PolicyError:
        return PolicyError(self.origin, self.rule, fld, problem)

    def mapping(self, value: Any, fld: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(fld, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise self.fail(f"{fld}.{key}" if fld else str(key), "unknown key")
        return value

    def text(self, value: Any, fld: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(fld, f"expected a non-empty string, got {value!r}")
        return value

    def money(self, value: Any, fld: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(fld, f"expected whole won, got {value!r}")
        if value < 0:
            raise self.fail(fld, f"must not be negative, got {value}")
        return value

    def hours(self, value: Any, fld: str) -> int:
        """A duration like 72h or 14d, as whole hours."""
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            raise self.fail(fld, f"bad duration {value!r}; write e.g. 72h or 14d")
        n = int(match.group(1))
        return n * 24 if match.group(2) == "d" else n

    def names(self, value: Any, fld: str, enum_cls: type[enum.Enum] | None = None) -> frozenset[Any]:
        if not isinstance(value, list) or not value:
            raise self.fail(fld, "expected a non-empty list")
        out = set()
        for item in value:
            name = self.text(item, fld)
            if enum_cls is not None:
                if name not in enum_cls.__members__:
                    raise self.fail(fld, f"unknown {enum_cls.__name__} {name!r}")
                out.add(enum_cls[name])
            else:
                out.add(name)
        return frozenset(out)

    def instant(self, value: Any, fld: str) -> int:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                raise self.fail(fld, f"not an ISO-8601 instant: {value!r}") from None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise self.fail(fld, "expected a quoted ISO-8601 instant with an offset")
        return (value - _EPOCH) // dt.timedelta(milliseconds=1)
