"""Admission: decode an input value and validate it, or say why it is a dead letter.

Every path that reads an input topic (the worker's intake, the incident feed, report catch-up,
a sweep of stored states, the replay) admits records through `Admission.check`, so a record
is valid or rejected for the same reason wherever it is read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from processors.errors import InvalidRecord
from processors.policy import Policy
from processors.validate import (validate_approval, validate_decision, validate_entitlement, validate_key,
                                 validate_report,
                                 validate_window)

from streams.errors import DecodeError, Stage
from streams.wire.codec import Codec

VALIDATORS: Mapping[str, Callable[[Any, Policy], None]] = {
    "outage_window": validate_window,
    "entitlement_state": validate_entitlement,
    "damage_report": validate_report,
    "incident_approval": validate_approval,
    "review_decision": validate_decision,
}
# Records whose Kafka key must be their key field (processors.validate.validate_key). An
# entitlement state is stored under its key (worker.store), so a state whose entitlement_id was
# mangled after the producer keyed it would otherwise be one entitlement to the worker and
# another to a replay or the batch evaluator.
KEYED = frozenset({"outage_window", "entitlement_state", "damage_report", "incident_approval", "review_decision"})


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a value was not admitted: the dead letter's stage, error class and message."""
    stage: Stage
    error_class: str
    reason: str


class Admission:
    """Decodes and validates the values of the input topics under one policy."""

    def __init__(self, codec: Codec, policy: Policy) -> None:
        self.codec = codec
        self.policy = policy

    def check(self, schema: str, value: bytes | None, key: bytes | None = None, *, keyed: bool = True) -> Any:
        """The valid record, or a Rejection saying why not. `key` is the Kafka key the value was
        read with; for the schemas in KEYED it must be the record's key field (unless `keyed` is
        False: a value whose key was checked before, see stored_state)."""
        try:
            record = self.codec.decode_obj(schema, value)
            VALIDATORS[schema](record, self.policy)
            if keyed and schema in KEYED:
                validate_key(record, key)
            return record
        except DecodeError as exc:
            return Rejection(Stage.DECODE, type(exc).__name__, exc.reason)
        except InvalidRecord as exc:
            return Rejection(Stage.VALIDATE, type(exc).__name__, exc.reason)

    def valid(self, schema: str, value: bytes | None, key: bytes | None = None) -> Any | None:
        """The valid record or None: for records read again (a restore, a sweep, a catch-up)
        whose rejection was dead-lettered when they first arrived."""
        got = self.check(schema, value, key)
        return None if isinstance(got, Rejection) else got

    def stored_state(self, value: bytes) -> Any | None:
        """The valid entitlement state of a value read back from the store, or None. Its key was
        checked when it was stored (the store key is the Kafka key); only the value is checked
        again, since a restore stores a key's first value without validating it."""
        got = self.check("entitlement_state", value, keyed=False)
        return None if isinstance(got, Rejection) else got
