"""Seeded benchmark workloads, generated once and cached under bench_data/.

W1: 1,000,000 JSON events, 3 regions x 1,000 keys, 10 minutes of event time (~30k window groups).
W2: the same events spread over 60 minutes (~180k groups, the hard case).
W1-avro: W1 as an Avro container file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import fastavro
import orjson

BASE_MS = 1_767_225_600_000
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1")
EVENT_SCHEMA = {
    "type": "record",
    "name": "Event",
    "namespace": "analytics",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "event_time", "type": "long"},
        {"name": "region", "type": "string"},
        {"name": "key", "type": "string"},
        {"name": "value", "type": "double"},
    ],
}


@dataclass(frozen=True)
class Workload:
    name: str
    events: int
    span_minutes: int
    fmt: str  # json | avro
    keys: int = 1_000
    seed: int = 2026

    @property
    def filename(self) -> str:
        ext = "avro" if self.fmt == "avro" else "jsonl"
        return f"{self.name}-{self.events}-{self.span_minutes}m-s{self.seed}.{ext}"


WORKLOADS = {
    "W1": Workload("W1", 1_000_000, 10, "json"),
    "W2": Workload("W2", 1_000_000, 60, "json"),
    "W1-avro": Workload("W1-avro", 1_000_000, 10, "avro"),
}


def events(workload: Workload) -> list[dict]:
    """Events in arrival order: event time mostly increasing, a few seconds of disorder."""
    rng = random.Random(workload.seed)
    span_ms = workload.span_minutes * 60_000
    out = []
    for i in range(workload.events):
        t = BASE_MS + int(i * span_ms / workload.events) + rng.randint(-3_000, 3_000)
        out.append(
            {
                "event_id": f"e{i}",
                "event_time": max(t, BASE_MS),
                "region": REGIONS[rng.randrange(3)],
                "key": f"k{rng.randrange(workload.keys):04d}",
                "value": float(rng.randrange(1, 100_000)) / 100,
            }
        )
    return out


def materialize(workload: Workload, folder: Path) -> Path:
    """Path of the workload's file, generating it on first use."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / workload.filename
    if path.exists():
        return path
    temp = path.with_suffix(".tmp")
    rows = events(workload)
    with temp.open("wb") as handle:
        if workload.fmt == "avro":
            fastavro.writer(handle, fastavro.parse_schema(EVENT_SCHEMA), rows, codec="null")
        else:
            for row in rows:
                handle.write(orjson.dumps(row) + b"\n")
    temp.rename(path)
    return path
