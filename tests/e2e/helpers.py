"""Shared by the CLI end-to-end tests: generated events, an independent computation of their
aggregates, running the CLI and reading what it wrote."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import orjson
import pyarrow.parquet as pq
import pytest

from transforms.aggregate import HLL_RELATIVE_ERROR, KLL_RANK_ERROR

REPO = Path(__file__).resolve().parents[2]
BASE_MS = 1_767_225_600_000
AVRO_EVENT = {
    "type": "record", "name": "Event",
    "fields": [
        {"name": "event_id", "type": "string"}, {"name": "event_time", "type": "long"},
        {"name": "region", "type": "string"}, {"name": "key", "type": "string"}, {"name": "value", "type": "double"},
    ],
}
MALFORMED = [
    b"{this is not json",
    b"",
    b'{"event_id": "m1", "region": "eu", "key": "k1", "value": 1}',
    b'{"event_id": "m2", "event_time": "not a time", "region": "eu", "key": "k1", "value": 1}',
    b'{"event_id": "m3", "event_time": 1767225600000, "region": "eu", "key": "k1", "value": "high"}',
    b"\xff\xfe broken utf-8",
]


def make_events(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for i in range(n):
        events.append({
            "event_id": f"e{rng.randrange(n)}",  # some repeated ids: distinct_ids < count
            "event_time": BASE_MS + rng.randrange(0, 600_000) if i % 2 else
            datetime.fromtimestamp((BASE_MS + rng.randrange(0, 600_000)) / 1000, UTC).isoformat(),
            "region": rng.choice(["us-east-1", "eu-west-1"]),
            "key": f"k{rng.randrange(5)}",
            "value": round(rng.uniform(0, 1000), 3) if i % 7 else rng.randrange(100),
            "ignored": {"extra": i},
        })
    return events


def to_ms(t) -> int:
    if isinstance(t, int):
        return t
    return int(datetime.fromisoformat(t).timestamp() * 1000)


def expected_aggregates(events: list[dict], window_ms: int = 60_000) -> dict[tuple, dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for e in events:
        t = to_ms(e["event_time"])
        start = t - t % window_ms
        groups[(start, e["region"], e["key"])].append(e)
    out = {}
    for (start, region, key), members in groups.items():
        values = [float(m["value"]) for m in members]
        out[(iso(start), iso(start + window_ms), region, key)] = {
            "values": sorted(values), "count": len(values), "sum": math.fsum(values),
            "min": min(values), "max": max(values), "distinct_ids": len({m["event_id"] for m in members}),
        }
    return out


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.run", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


def default_dead_letters(out: Path) -> Path:
    """Where a run writing aggregates to `out` writes its dead letters by default: beside `out`."""
    return out.with_name(out.name + "_dead_letter")


def read_aggregates(out: Path, fmt: str) -> list[dict]:
    records = []
    for path in sorted(out.rglob(f"part-*.{fmt}")):
        if "dead_letter" in path.parts:
            continue
        if fmt == "jsonl":
            records += [orjson.loads(line) for line in path.read_bytes().splitlines()]
        elif fmt == "parquet":
            records += pq.read_table(path).to_pylist()
        else:
            with path.open("rb") as handle:
                records += list(fastavro.reader(handle))
    return records


def check_against_expected(records: list[dict], expected: dict[tuple, dict]) -> None:
    got = {(r["window_start"], r["window_end"], r["region"], r["key"]): r for r in records}
    assert len(got) == len(records), "an aggregate was written twice"
    assert set(got) == set(expected)
    for group, want in expected.items():
        r = got[group]
        assert r["pane"] == "ON_TIME" and r["pane_index"] == 0
        assert r["count"] == want["count"]
        assert r["sum"] == pytest.approx(want["sum"], rel=1e-12)
        assert r["min"] == want["min"] and r["max"] == want["max"]
        assert r["mean"] == pytest.approx(want["sum"] / want["count"], rel=1e-12)
        values = want["values"]
        for name, rank in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            observed_rank = sum(v <= r[name] for v in values) / len(values)
            assert abs(observed_rank - rank) <= max(3 * KLL_RANK_ERROR, 1 / len(values)), (group, name)
        assert abs(r["distinct_ids"] - want["distinct_ids"]) <= 3 * HLL_RELATIVE_ERROR * want["distinct_ids"]
