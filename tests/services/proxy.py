"""An HTTP proxy in front of a service endpoint that answers some requests itself (fault
injection in tests) and forwards the others unchanged. Subclasses decide in `refusal()`."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from ._base import HOST

# Per-connection headers: the proxy speaks its own connection to each side.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"}


@dataclass(frozen=True)
class Refusal:
    """The answer the proxy gives instead of forwarding."""

    status: int
    content_type: str
    body: bytes


class FaultProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to `upstream` unless `refusal()` returns an answer for it."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or HOST, parts.port or 80
        super().__init__((HOST, 0), _ProxyHandler)

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def refusal(self, method: str, path: str, headers: Message) -> Refusal | None:
        """The answer to give instead of forwarding, or None to forward."""
        return None

    def forwarded(self, method: str, path: str, status: int) -> None:
        """Called after a forwarded request was answered (for bookkeeping in subclasses)."""

    @contextlib.contextmanager
    def serving(self) -> Iterator[FaultProxy]:
        """Serve in a background thread for the body of the with-block."""
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.shutdown()
            self.server_close()
            thread.join(timeout=10)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 answers `Expect: 100-continue` (boto3 sends it with S3 uploads) at once; under
    # HTTP/1.0 the client would wait a second for it on every upload.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: FaultProxy

    def log_message(self, *args: object) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _relay(self) -> None:
        body = self._read_body()  # read even when refusing, so the client sees the answer
        refusal = self.server.refusal(self.command, self.path, self.headers)
        if refusal is not None:
            self._answer(refusal.status, [("Content-Type", refusal.content_type)], refusal.body)
            return
        skip = _HOP_BY_HOP | {"host", "content-length"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        connection = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=30)
        try:
            sends_body = body or self.command in ("POST", "PUT", "PATCH")
            connection.request(self.command, self.path, body=body if sends_body else None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            status, rheaders = response.status, response.getheaders()
        finally:
            connection.close()
        self.server.forwarded(self.command, self.path, status)
        self._answer(status, rheaders, data)

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        length = str(len(data))
        for key, value in headers:
            lower = key.lower()
            if lower == "content-length" and self.command == "HEAD":
                length = value  # a HEAD answer states the size of the body it does not send
            elif lower not in _HOP_BY_HOP | {"content-length", "date", "server"}:
                self.send_header(key, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _relay  # noqa: N815 - http.server's naming
