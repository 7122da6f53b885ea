"""Every error the I/O side raises on purpose, and the names of where a record can fail.

One root for the whole project: `processors.errors.MakegoodError` (the pure side adds
`PolicyError` and `InvalidRecord`). Below it, one base class per area of `streams/`, so a
command can catch an area's failures as one thing and `cli.main` turns any of them into the
one line an operator reads. Nothing here is raised for a bad input *record*: that becomes a
dead letter (`Stage` says where it failed), never an exception that stops a worker.
"""
from __future__ import annotations

from enum import StrEnum

from processors.errors import InvalidRecord, MakegoodError, PolicyError

__all__ = [
    "MakegoodError", "PolicyError", "InvalidRecord", "Stage",
    "BrokerError", "TopicError", "KafkaAccessError", "ProduceError", "RetriableProduceError", "PermanentProduceError",
    "GroupFenced", "TransactionFailed",
    "ReadError", "CodecError", "DecodeError", "EncodeError", "JsonRecordError", "LedgerError",
    "RegistryUnavailable", "SchemaIncompatible",
    "RebuildError", "ReplayError", "ReportError", "UnknownIncident", "StackError", "DemoError",
    "ScenarioError", "CommandError", "PublishError", "ConfigError", "StartupError",
]


class Stage(StrEnum):
    """Where an input record failed; dead letters carry it (`dead_letter.avsc` field `stage`)."""
    DECODE = "DECODE"        # not a record of the topic's schema
    VALIDATE = "VALIDATE"    # a record, but semantically invalid (processors.validate)
    PROCESS = "PROCESS"      # deciding or publishing it failed for good (a processor bug,
                             # an output the broker will never take), contained to this record


# ----------------------------------------------------------------------------- settings, start-up

class ConfigError(MakegoodError):
    """A MAKEGOOD_* variable that cannot be used as given."""


class StartupError(MakegoodError):
    """A worker that cannot start as configured (a topic missing, a port taken); the line
    says what to do. `exit_code` is the process's exit status."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ----------------------------------------------------------------------------- kafka/

class BrokerError(MakegoodError):
    """Kafka cannot be used as asked: unreachable, a topic missing, a request refused."""


class TopicError(BrokerError):
    """Topic declarations or their creation on the broker."""


class KafkaAccessError(BrokerError):
    """The brokers answer but refuse this client: wrong credentials, a certificate that cannot
    be verified. Waiting does not help; the line says which setting to fix."""


class ProduceError(BrokerError):
    """The broker did not take every record of a batch (after librdkafka's own retries).

    `failures` holds (index in the batch, librdkafka error) of the records that failed."""

    def __init__(self, message: str, failures: list[tuple[int, object]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class RetriableProduceError(ProduceError):
    """Worth retrying: the broker or network is away for now (timeouts, leader changes)."""


class PermanentProduceError(ProduceError):
    """Never worth retrying: the same records will fail the same way (too large, not
    authorised, a topic that does not exist). The caller dead-letters them or stops."""


class GroupFenced(BrokerError):
    """The consumer group moved on: this member no longer owns what its transaction answers.
    The transaction was aborted; the batch is the new owner's to do."""


class TransactionFailed(BrokerError):
    """A transaction was aborted for a reason other than fencing; with `fatal`, the producer
    itself can no longer be used and must be created anew."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


class ReadError(BrokerError):
    """Reading a range of a topic failed or stalled."""


# ----------------------------------------------------------------------------- wire/

class CodecError(MakegoodError):
    """Base of the wire-format errors."""


class DecodeError(CodecError):
    """Bytes that are not a record of the expected schema. Carries the raw bytes for the dead letter."""

    def __init__(self, reason: str, raw: bytes | None):
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


class RegistryUnavailable(CodecError):
    """The schema registry does not answer (or refuses us) while a schema id must be resolved or
    a schema registered. Not a property of the record: readers wait with backoff, never drop it."""


class SchemaIncompatible(CodecError):
    """The registry refused a schema: it breaks the subject's compatibility rule (BACKWARD)."""


class EncodeError(CodecError):
    """A record that does not fit its schema; the message names the offending fields."""


class JsonRecordError(CodecError):
    """A JSON record that does not fit its schema. `path` names the field ("" for the record)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


# ----------------------------------------------------------------------------- ledger/

class LedgerError(MakegoodError):
    """The Redis ledger cannot be read or written."""


class RebuildError(LedgerError):
    """`makegood ledger rebuild` could not finish."""


# ----------------------------------------------------------------------------- replay/, report/

class ReplayError(MakegoodError):
    """A replay that cannot start or finish: bad range, broker or ledger trouble."""


class ReportError(MakegoodError):
    """The report cannot be made: broker unreachable, topics missing, reading timed out."""


class UnknownIncident(ReportError):
    """No revision of the incident is on the outage topic."""


# ----------------------------------------------------------------------------- dev/, cli/

class StackError(MakegoodError):
    """The local stack (or the worker processes on it) could not be started or stopped."""


class DemoError(StackError):
    """The demo could not run to its end."""


class ScenarioError(MakegoodError, ValueError):
    """Arguments the scenario generator cannot honour."""


class CommandError(MakegoodError):
    """A command that cannot do what was asked: bad topic, unreadable file, broker refused."""


class PublishError(CommandError):
    """The broker did not acknowledge every published record."""
