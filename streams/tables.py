"""The value formats of the worker's state, in one place.

- entitlement store (states.py): key entitlement_id; value = header (source partition, source
  offset, updated_at) + the Avro bytes as received. The header lets a sweep pick its own
  partitions and lets "newer wins" compare versions without decoding the record; a state
  restored from the topic without decoding it has updated_at UNKNOWN_UPDATED_AT until needed.
- `cases` (a faust table): key reporter_id; value = JSON {partition, cases: {case_id: CaseState}, pending: [reports
  waiting for their incident], seen: [ids of reports already triaged]}.
"""
from __future__ import annotations

import json
import struct
from typing import Any

from processors.model import Source
from processors.reports import CaseState

_ENT_HEADER = struct.Struct(">HQq")
UNKNOWN_UPDATED_AT = -(2 ** 63)

Touched = dict[bytes, tuple[int, dict]]   # reporter key -> (partition, case doc) changed in a batch


def pack_entitlement(partition: int, offset: int, updated_at: int, raw: bytes) -> bytes:
    return _ENT_HEADER.pack(partition, offset, updated_at) + raw


def entitlement_header(blob: bytes) -> tuple[int, int, int]:
    """(source partition, source offset, updated_at) of a stored entitlement."""
    return _ENT_HEADER.unpack_from(blob)


def entitlement_raw(blob: bytes) -> bytes:
    return blob[_ENT_HEADER.size:]


def new_case_doc(partition: int) -> dict:
    return {"partition": partition, "cases": {}, "pending": [], "seen": []}


def pending_entry(raw: bytes, source: Source, report_id: str | None) -> dict:
    return {"raw": raw.hex(), "source": [source.topic, source.partition, source.offset], "report_id": report_id}


def case_to_json(c: CaseState) -> dict:
    return {"case_id": c.case_id, "incident_id": c.incident_id, "reporter_id": c.reporter_id,
            "business_id": c.business_id, "paid_krw": c.paid_krw, "payout_ids": list(c.payout_ids),
            "reviewed": sorted(c.reviewed), "report_ids": list(c.report_ids)}


def case_from_json(d: dict) -> CaseState:
    return CaseState(d["case_id"], d["incident_id"], d["reporter_id"], d["business_id"], d["paid_krw"],
                     tuple(d["payout_ids"]), frozenset(d["reviewed"]), tuple(d["report_ids"]))


def case_doc(cases: Any, key: bytes, partition: int, touched: Touched) -> dict:
    """A reporter's entry: as already changed in this batch, else as stored, else a new one."""
    if key in touched:
        return touched[key][1]
    blob = cases.data.get(key)
    return json.loads(blob) if blob else new_case_doc(partition)


def store_case_docs(cases: Any, touched: Touched) -> list[tuple[str, bytes, bytes, int]]:
    """Put changed entries in the table; returns their changelog records (topic, key, value,
    partition) for the caller to produce: the table's serializers are raw, so these are the
    bytes faust itself would write, and its recovery reads them back unchanged."""
    topic = cases.changelog_topic.get_topic_name()
    records = []
    for key, (partition, doc) in touched.items():
        blob = json.dumps(doc, separators=(",", ":")).encode()
        cases.data[key] = blob
        records.append((topic, key, blob, partition))
    return records
