"""Reading a worker's /metrics, /healthz and /readyz in tests."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def get(port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def readyz(port: int) -> tuple[bool, list[str]]:
    status, body = get(port, "/readyz")
    doc = json.loads(body)
    assert (status == 200) == doc["ready"], (status, doc)
    return doc["ready"], doc["not_ready"]


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    status, text = get(port, "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def by(samples_: dict, name: str, *label_names: str) -> dict:
    """{label values: value} of one metric, e.g. by(s, "makegood_remedies_issued_total", "action")."""
    out = {}
    for (n, labels), v in samples_.items():
        if n == name:
            d = dict(labels)
            key = tuple(d.get(k, "") for k in label_names)
            out[key if len(key) != 1 else key[0]] = v
    return out
