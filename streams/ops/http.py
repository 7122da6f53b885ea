"""The worker's HTTP endpoint, served from a thread: /metrics, /healthz, /readyz.

A thread rather than a server on the event loop, so that the endpoint answers while a sweep
keeps the loop busy, and /healthz can say the loop is stuck instead of timing out with it.
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.ops.health import Health

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: "OpsServer"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.server.metrics(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            alive, why = self.server.health.alive()
            self._json(200 if alive else 503, {"alive": alive, "reason": why})
        elif path == "/readyz":
            ready, reasons = self.server.health.ready()
            self._json(200 if ready else 503, {"ready": ready, "not_ready": reasons})
        else:
            self._json(404, {"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]})

    def _json(self, status: int, body: dict) -> None:
        self._send(status, (json.dumps(body) + "\n").encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass    # a scrape every 15 s per worker is not news


class OpsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, health: Health, metrics: Callable[[], bytes]) -> None:
        super().__init__((host, port), _Handler)
        self.health = health
        self.metrics = metrics
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> "OpsServer":
        self._thread = threading.Thread(target=self.serve_forever, name="ops-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self.server_close()
            self._thread = None
