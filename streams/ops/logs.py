"""Logging for a worker: one handler on standard error, text or JSON lines, quiet libraries.

- `MAKEGOOD_LOG_FORMAT=json`: one JSON object per line (time, level, logger, message, worker,
  and the exception when there is one) for log pipelines.
- The libraries a worker runs on (the Redis client, asyncio, prometheus_client) log at
  `MAKEGOOD_LIBRARY_LOGLEVEL` (WARNING by default); librdkafka's own lines go to the
  `makegood.rdkafka` logger, which keeps them out of the output (streams/settings.py).
- `LibraryNoise`: what those libraries do log is rate-limited per message template (a broker
  outage once made the previous Kafka client log ~2,900 ERROR lines in 10 s), and dropped
  entirely while the worker itself reports Kafka as unreachable (the outage has its own
  WARNING; ops.health.Outage).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Callable

# httpx (httpx2 in some builds): the schema registry client logs every request at INFO
LIBRARIES = ("redis", "asyncio", "prometheus_client", "urllib3", "httpx", "httpx2", "httpcore")
NOISE_WINDOW_S = 60.0
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] [%(name)s] %(message)s"


class JsonFormatter(logging.Formatter):
    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                       + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "message": record.getMessage(),
               "worker": self.worker_id, "pid": record.process}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class LibraryNoise(logging.Filter):
    """Rate-limits the libraries' records: per (logger, message template), the first passes,
    the rest of the window is counted and summed up in the next one that passes."""

    def __init__(self, window_s: float = NOISE_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self.kafka_down = False            # set while the worker reports a Kafka outage
        self.dropped = 0                   # dropped during outages (counted, for the reminder)
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    @staticmethod
    def is_library(name: str) -> bool:
        return name.split(".", 1)[0] in LIBRARIES

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.is_library(record.name):
            return True
        if self.kafka_down and record.levelno < logging.CRITICAL:
            self.dropped += 1
            return False
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.window_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {now - last:.0f} s)"
        return True


def setup_logging(*, level: str, library_level: str, fmt: str, worker_id: str,
                  scrub: logging.Filter | None = None) -> LibraryNoise:
    """The process's logging, configured once; returns the libraries' noise filter. `scrub`
    (streams.security.RedactSecrets) sees every record first and takes secrets out of it."""
    handler = logging.StreamHandler(sys.stderr)
    if scrub is not None:
        handler.addFilter(scrub)
    handler.setFormatter(JsonFormatter(worker_id) if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    noise = LibraryNoise()
    handler.addFilter(noise)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
    logging.captureWarnings(True)
    return noise


class Budget:
    """At most `limit` log lines per `window_s`; what is over is counted and reported once the
    window has passed (e.g. dead letters: one WARNING each, but a flood of poison input must not
    become a flood of log lines)."""

    def __init__(self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._start = clock()
        self._used = 0
        self.over = 0

    def allow(self) -> tuple[bool, int]:
        """(may log this one, how many were held back in the window that just ended)."""
        now = self.clock()
        held = 0
        if now - self._start >= self.window_s:
            held, self.over = self.over, 0
            self._start, self._used = now, 0
        if self._used < self.limit:
            self._used += 1
            return True, held
        self.over += 1
        return False, held
