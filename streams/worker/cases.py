"""The reports agent's table `cases`: one entry per reporter, in the table's value format.

Value = JSON {partition, cases: {case_id: CaseState}, pending: [reports waiting for their
incident], seen: [ids of reports already triaged]}. `Cases` wraps the faust table: entries are
read as changed in the batch in hand, else as stored, and a batch's changes are stored and
written to the table's changelog in one produce (faust's own changelog buffer stalls the stream
whenever it holds more than 100 records: ProducerBuffer.wait_until_ebb).
"""
from __future__ import annotations

import json
from typing import Any, Iterator

from processors.model import Source
from processors.reports import CaseState

Touched = dict[bytes, tuple[int, dict]]   # reporter key -> (partition, case doc) changed in a batch


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


def has_seen(doc: dict, report_id: str) -> bool:
    """The reporter's entry has triaged this report already, or holds it waiting."""
    return report_id in doc.get("seen", ()) or any(p.get("report_id") == report_id for p in doc["pending"])


class Cases:
    """The faust table of reporter entries (raw serializers: values are our JSON bytes)."""

    def __init__(self, table: Any):
        self.table = table

    def doc(self, key: bytes, partition: int, touched: Touched) -> dict:
        """A reporter's entry: as already changed in this batch, else as stored, else a new one."""
        if key in touched:
            return touched[key][1]
        blob = self.table.data.get(key)
        return json.loads(blob) if blob else new_case_doc(partition)

    def waiting(self, partitions: set[int]) -> Iterator[tuple[bytes, int]]:
        """(reporter key, partition) of the entries in `partitions` with reports still waiting."""
        for key, blob in list(self.table.data.items()):
            doc = json.loads(blob)
            if doc.get("pending") and doc["partition"] in partitions:
                yield key, doc["partition"]

    def store(self, touched: Touched) -> list[tuple[str, bytes, bytes, int]]:
        """Put changed entries in the table; returns their changelog records (topic, key, value,
        partition) for the caller to produce: the table's serializers are raw, so these are the
        bytes faust itself would write, and its recovery reads them back unchanged."""
        topic = self.table.changelog_topic.get_topic_name()
        records = []
        for key, (partition, doc) in touched.items():
            blob = json.dumps(doc, separators=(",", ":")).encode()
            self.table.data[key] = blob
            records.append((topic, key, blob, partition))
        return records
