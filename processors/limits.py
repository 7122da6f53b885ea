"""A policy's approval limits (`approval: {above_remedies: N, above_won: W}`), parsed.

What the limits mean, and the gate that applies them, is processors.approval; this module is
only the policy's data, kept apart so that policy.py does not depend on deciding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

APPROVAL_KEYS = {"above_remedies", "above_won"}


@dataclass(frozen=True, slots=True)
class Limits:
    """An incident whose remedies to entitlements would number more than `above_remedies`, or
    move more than `above_won` won, since the last approval is held until an operator approves."""

    above_remedies: int
    above_won: int


def parse_limits(raw: Any, fail: Callable[[str, str], Exception]) -> Limits | None:
    """The `approval:` mapping of a policy (None when absent); `fail(field, problem)` makes the
    policy's error."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise fail("approval", f"expected a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in APPROVAL_KEYS:
            raise fail(f"approval.{key}", "unknown key")
    values = {}
    for key in sorted(APPROVAL_KEYS):
        if key not in raw:
            raise fail(f"approval.{key}", "missing")
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail(f"approval.{key}", f"expected a whole number >= 0, got {value!r}")
        values[key] = value
    return Limits(**values)
