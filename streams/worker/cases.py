"""Each reporter's cases: the reports handler's state, and its changelog topic.

Value = JSON {partition, cases: {case_id: CaseState}, pending: [reports waiting for their
incident], seen: [ids of reports already triaged]}, keyed by reporter. `Cases` holds the
entries of the report partitions this worker owns. A batch's changed entries are written to
makegood.cases.v1 (compacted, co-partitioned with the reports) in the same transaction as the
batch's outputs and offsets, and applied to memory only once that transaction committed; a
worker assigned a partition reads its entries back (read committed), so the entries always
match the committed offsets exactly.
"""
from __future__ import annotations

import json
from typing import Iterator

from processors.model import Source
from processors.reports import CaseState

from streams.kafka.reader import PartitionReader

Touched = dict[bytes, tuple[int, dict]]   # reporter key -> (partition, case doc) changed in a batch


def new_case_doc(partition: int) -> dict:
    return {"partition": partition, "cases": {}, "pending": [], "seen": []}


def pending_entry(raw: bytes, source: Source, report_id: str | None) -> dict:
    return {"raw": raw.hex(), "source": [source.topic, source.partition, source.offset], "report_id": report_id}


def case_to_json(c: CaseState) -> dict:
    return {"case_id": c.case_id, "incident_id": c.incident_id, "reporter_id": c.reporter_id,
            "business_id": c.business_id, "paid_krw": c.paid_krw, "payout_ids": list(c.payout_ids),
            "reviewed": sorted(c.reviewed), "report_ids": list(c.report_ids),
            "review_paid_krw": c.review_paid_krw, "review_payout_ids": list(c.review_payout_ids),
            "decisions": list(c.decisions), "service": c.service, "locale": c.locale}


def case_from_json(d: dict) -> CaseState:
    # entries written before #16 have no review decisions, service or locale yet
    return CaseState(d["case_id"], d["incident_id"], d["reporter_id"], d["business_id"], d["paid_krw"],
                     tuple(d["payout_ids"]), frozenset(d["reviewed"]), tuple(d["report_ids"]),
                     d.get("review_paid_krw", 0), tuple(d.get("review_payout_ids", ())),
                     tuple(d.get("decisions", ())), d.get("service", ""), d.get("locale"))


class Cases:
    """The reporter entries of the owned report partitions."""

    def __init__(self, topic: str):
        self.topic = topic                  # the real name of makegood.cases.v1
        self.data: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self.data)

    def doc(self, key: bytes, partition: int, touched: Touched) -> dict:
        """A reporter's entry: as already changed in this batch, else as stored, else a new one."""
        if key in touched:
            return touched[key][1]
        blob = self.data.get(key)
        return json.loads(blob) if blob else new_case_doc(partition)

    def waiting(self, partitions: set[int]) -> Iterator[tuple[bytes, int]]:
        """(reporter key, partition) of the entries in `partitions` with reports still waiting."""
        for key, blob in list(self.data.items()):
            doc = json.loads(blob)
            if doc.get("pending") and doc["partition"] in partitions:
                yield key, doc["partition"]

    def changes(self, touched: Touched) -> list[tuple[str, bytes, bytes, int]]:
        """The changelog records (topic, key, value, partition) of a batch's changed entries."""
        return [(self.topic, key, _blob(doc), partition) for key, (partition, doc) in touched.items()]

    def apply(self, touched: Touched) -> None:
        """The batch committed: its entries are now the stored ones."""
        for key, (_, doc) in touched.items():
            self.data[key] = _blob(doc)

    def assign(self, kept: set[int], restored: dict[bytes, bytes]) -> None:
        """Keep the entries of `kept` partitions, take the restored ones for the others."""
        self.data = {k: v for k, v in self.data.items() if json.loads(v)["partition"] in kept}
        self.data.update(restored)


def _blob(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def read_cases(reader: PartitionReader, topic: str, partitions: set[int]) -> dict[bytes, bytes]:
    """The latest entry of every reporter of `partitions`, from the changelog (compaction's
    rule: the last record of a key wins)."""
    found: dict[bytes, bytes] = {}
    spans = [s for s in reader.whole(topic) if s.partition in partitions]
    for batch in reader.batches(topic, spans):
        for raw in batch:
            if raw.key is not None and raw.value is not None:
                found[raw.key] = raw.value
    return found
