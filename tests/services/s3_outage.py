"""A proxy in front of an S3 endpoint (moto) that refuses writes for a while, as S3 does in an
outage: 503 ServiceUnavailable with S3's XML error body, which boto3 retries. Reads pass."""

from __future__ import annotations

import threading
import time
import urllib.parse
from email.message import Message

from .proxy import FaultProxy, Refusal

# PutObject, UploadPart, CopyObject (PUT); Create/CompleteMultipartUpload, DeleteObjects (POST);
# DeleteObject, AbortMultipartUpload (DELETE).
WRITE_METHODS = ("PUT", "POST", "DELETE")


def _s3_error(code: str, message: str) -> Refusal:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>outage</RequestId></Error>"
    )
    return Refusal(503, "application/xml", body.encode())


class S3WriteOutage(FaultProxy):
    """Forwards to `upstream`, but answers 503 to every write from the first write it sees until
    `seconds` later (math.inf: for good). Counts what it refused and which keys were committed."""

    def __init__(self, upstream: str, seconds: float, code: str = "ServiceUnavailable") -> None:
        self.seconds = seconds
        self.answer = _s3_error(code, "Service is unable to handle request.")
        self.lock = threading.Lock()
        self.first_refusal: float | None = None
        self.refused = 0
        self.refused_keys: set[str] = set()  # "bucket/key"
        self.committed_keys: set[str] = set()  # completed multipart uploads and PutObjects
        super().__init__(upstream)

    def refusal(self, method: str, path: str, headers: Message) -> Refusal | None:
        if method not in WRITE_METHODS:
            return None
        with self.lock:
            now = time.monotonic()
            if self.first_refusal is None:
                self.first_refusal = now
            if now - self.first_refusal >= self.seconds:
                return None
            self.refused += 1
            self.refused_keys.add(_key(path))
        return self.answer

    def forwarded(self, method: str, path: str, status: int) -> None:
        query = urllib.parse.urlsplit(path).query
        put_object = method == "PUT" and "partNumber=" not in query
        complete_upload = method == "POST" and "uploadId=" in query
        if status == 200 and (put_object or complete_upload):
            with self.lock:
                self.committed_keys.add(_key(path))


def _key(path: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(path).path.lstrip("/"))
