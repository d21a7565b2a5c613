"""Small builders shared by the unit tests."""

from __future__ import annotations

import orjson

from io_connectors.records import RawBatch


def event(t_ms: int, value: float, key: str = "k1", region: str = "eu-west-1", event_id: str | None = None) -> bytes:
    return orjson.dumps(
        {"event_id": event_id or f"id-{t_ms}-{value}", "event_time": t_ms, "region": region, "key": key,
         "value": value}
    )


def batch(*records: bytes, source: str = "test") -> RawBatch:
    return RawBatch(source, list(records))
