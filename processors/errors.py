"""The project's exception hierarchy: one root, one subclass per failure kind."""

from __future__ import annotations


class MakegoodError(Exception):
    """Root of every exception makegood raises on purpose."""


class PolicyError(MakegoodError):
    """A policy file is malformed; the message names the file, the rule and the field."""

    def __init__(self, origin: str, rule: str | None, field: str, problem: str) -> None:
        self.origin = origin
        self.rule = rule
        self.field = field
        self.problem = problem
        where = f"rule {rule!r}" if rule is not None else "top level"
        super().__init__(f"{origin}: {where}, field {field!r}: {problem}")


class InvalidRecord(MakegoodError):
    """A record that decodes but is semantically invalid (goes to the dead-letter topic)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UnknownCase(InvalidRecord):
    """A review decision names no case under review of its reporter (dead-lettered)."""
