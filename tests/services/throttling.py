"""A proxy in front of a Kinesis endpoint that answers ProvisionedThroughputExceededException to
some GetRecords calls (fault injection in tests)."""

from __future__ import annotations

import random
import threading
from email.message import Message

from .proxy import FaultProxy, Refusal

_THROTTLED = Refusal(
    400,
    "application/x-amz-json-1.1",
    b'{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}',
)


class ThrottlingProxy(FaultProxy):
    """Forwards to `upstream`; refuses GetRecords calls until `limit` refusals.

    By default every other call, starting with the first (deterministic); with `fraction`, each
    call with that probability from a generator seeded with `seed` (reproducible)."""

    def __init__(self, upstream: str, limit: int, fraction: float | None = None, seed: int = 0) -> None:
        self.limit = limit
        self.fraction = fraction
        self.random = random.Random(seed)
        self.throttled = 0
        self.get_records = 0
        self.lock = threading.Lock()
        super().__init__(upstream)

    def refusal(self, method: str, path: str, headers: Message) -> Refusal | None:
        if method == "POST" and headers.get("X-Amz-Target", "").endswith(".GetRecords") and self.should_throttle():
            return _THROTTLED
        return None

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
