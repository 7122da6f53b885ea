"""What guarded issuance adds to a window close: the count pass (worker.guard) against the sweep.

Before a CLOSED revision is released, every worker dry-runs the walk over its stored states to
count what the revision would issue (decode, decide, sum; nothing encoded or produced). This
measures, in one process on the same stored states, that pass against the sweep's own deciding
(`sweeppool.decide_chunk`: decode, decide, list and encode the outputs), so the ratio is the
count's share of a sweep's CPU before any broker or Redis time. Run:

    .venv/bin/python -m bench.approval [--events N]
"""
from __future__ import annotations

import argparse
import time

from processors.approval import cost_from, upto
from processors.entitlements import decide_entitlement
from processors.model import Source
from processors.policy import load_policy
from processors.windows import IncidentHistory
from streams.decide.admit import Admission
from streams.settings import Settings
from streams.wire.codec import Codec
from streams.worker.store import entitlement_header, entitlement_raw, pack_entitlement
from streams.worker.sweeppool import decide_chunk

from bench import data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    a = ap.parse_args()
    settings = Settings.from_env()
    codec = Codec.from_dir(settings.root / "schemas")
    admission = Admission(codec, load_policy(str(settings.policy_path)))
    ents = data.entitlements(codec, a.events)
    blobs = [pack_entitlement(i % 8, i, 0, v) for i, v in enumerate(ents.values)]
    history = IncidentHistory.of(list(data.windows()))

    t = time.perf_counter()
    for i in range(0, len(blobs), 2000):
        decide_chunk(admission, [history], "bench", blobs[i:i + 2000])
    sweep_s = time.perf_counter() - t

    t = time.perf_counter()
    prefix = upto(history, 2)
    rows = []
    for blob in blobs:
        partition, offset, _ = entitlement_header(blob)
        ent = admission.stored_state(entitlement_raw(blob))
        d = decide_entitlement(admission.policy, prefix, ent, Source("bench", partition, offset))
        rows += [(r.service, r.action.value, 1, r.amount_krw or 0) for r in d.remedies]
    cost = cost_from(rows)
    count_s = time.perf_counter() - t
    print(f"{a.events:,} stored states, {cost.remedies:,} remedies counted")
    print(f"sweep deciding (decode, decide, encode): {sweep_s:.2f} s ({a.events / sweep_s:,.0f} states/s)")
    print(f"count pass (decode, decide, sum):        {count_s:.2f} s ({a.events / count_s:,.0f} states/s)")
    print(f"count / sweep: {count_s / sweep_s:.2f}")


if __name__ == "__main__":
    main()
