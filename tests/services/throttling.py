"""A small HTTP proxy in front of a Kinesis endpoint that answers
ProvisionedThroughputExceededException to some GetRecords calls (fault injection in tests)."""

from __future__ import annotations

import http.server
import random
import threading
import urllib.error
import urllib.request


class ThrottlingProxy(http.server.ThreadingHTTPServer):
    """Forwards to `upstream`; refuses GetRecords calls until `limit` refusals.

    By default every other call, starting with the first (deterministic); with `fraction`, each
    call with that probability from a generator seeded with `seed` (reproducible)."""

    def __init__(self, upstream: str, limit: int, fraction: float | None = None, seed: int = 0) -> None:
        self.upstream, self.limit = upstream, limit
        self.fraction = fraction
        self.random = random.Random(seed)
        self.throttled = 0
        self.get_records = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    def should_throttle(self) -> bool:
        with self.lock:
            self.get_records += 1
            if self.fraction is None:
                throttle = self.get_records % 2 == 1
            else:
                throttle = self.random.random() < self.fraction
            throttle = throttle and self.throttled < self.limit
            self.throttled += throttle
            return throttle


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        server: ThrottlingProxy = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("X-Amz-Target", "").endswith(".GetRecords") and server.should_throttle():
            payload = b'{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(server.upstream + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, data, rheaders = response.status, response.read(), response.headers
        except urllib.error.HTTPError as err:
            status, data, rheaders = err.code, err.read(), err.headers
        self.send_response(status)
        for key, value in rheaders.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
