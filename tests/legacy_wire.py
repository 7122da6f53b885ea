"""Records as makegood wrote them before #17, for tests of reading them.

Until #17 the 8 fingerprint bytes of the single-object header were written in reverse order (the
CRC-64-AVRO value big-endian instead of the specification's little-endian). Production code
never writes that order any more; it only reads it. Tests write it to stand in for records that
were put on the topics (and into the ledger's user index) before the change.
"""
from __future__ import annotations

from typing import Any, Mapping

from streams.wire.codec import HEADER_LEN, MAGIC, Codec


def reversed_header(data: bytes) -> bytes:
    """`data` with its fingerprint bytes in the other order (the pre-#17 header, or back)."""
    assert data[:2] == MAGIC, "not single-object encoding"
    return data[:2] + data[2:HEADER_LEN][::-1] + data[HEADER_LEN:]


class PreFixCodec(Codec):
    """A codec that writes what makegood wrote before #17; reads like any codec."""

    def encode(self, name: str, record: Mapping[str, Any], *, check: bool = True) -> bytes:
        return reversed_header(super().encode(name, record, check=check))
