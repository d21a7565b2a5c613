"""The CLI end to end on generated files, checked against an independent computation."""

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


@pytest.fixture(scope="module")
def ndjson_input(tmp_path_factory):
    events = make_events(20_000)
    lines = [orjson.dumps(e) for e in events]
    # Malformed lines spread through the file; remember their 1-based line numbers.
    positions = {}
    for i, bad in enumerate(MALFORMED):
        at = 1000 * (i + 1) + i
        lines.insert(at, bad)
    for number, line in enumerate(lines, start=1):
        if line in MALFORMED:
            positions[number] = line
    path = tmp_path_factory.mktemp("input") / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, events, positions


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "avro"])
def test_cli_aggregates_equal_independent_computation(ndjson_input, tmp_path, fmt):
    path, events, bad_lines = ndjson_input
    out = tmp_path / "out"
    result = run_cli("--source", f"file://{path}", "--output", str(out), "--output_format", fmt)
    assert result.returncode == 0, result.stderr
    assert "records read" in result.stdout and "20,006" in result.stdout
    check_against_expected(read_aggregates(out, fmt), expected_aggregates(events))
    dead = [orjson.loads(line) for p in (out / "dead_letter").glob("*.jsonl") for line in p.read_bytes().splitlines()]
    assert sorted(int(d["source"].rsplit(":", 1)[1]) for d in dead) == sorted(bad_lines)
    assert all(d["error"] for d in dead)


def test_avro_and_json_inputs_give_identical_aggregates(ndjson_input, tmp_path):
    _, events, _ = ndjson_input
    clean = [{**{k: v for k, v in e.items() if k != "ignored"}, "event_time": to_ms(e["event_time"]),
              "value": float(e["value"])} for e in events]
    json_path = tmp_path / "events.jsonl"
    json_path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in clean))
    avro_path = tmp_path / "events.avro"
    with avro_path.open("wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(AVRO_EVENT), clean)
    assert run_cli("--source", f"file://{json_path}", "--output", str(tmp_path / "j")).returncode == 0
    result = run_cli("--source", f"file://{avro_path}", "--input_format", "avro", "--output", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    from_json = sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in read_aggregates(tmp_path / "j", "jsonl"))
    from_avro = sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in read_aggregates(tmp_path / "a", "jsonl"))
    assert from_json == from_avro and len(from_json) > 0


def test_rerun_writes_identical_files(ndjson_input, tmp_path):
    path, _, _ = ndjson_input
    out = tmp_path / "out"
    snapshots = []
    for _ in range(2):
        assert run_cli("--source", f"file://{path}", "--output", str(out)).returncode == 0
        snapshots.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert snapshots[0] == snapshots[1], "a re-run changed or added files"
    assert not [p for p in snapshots[1] if p.name.startswith(".tmp-")]
    assert any(p.parts[0].startswith("dt=") for p in snapshots[1])


def test_default_run_uses_synthetic_source_and_prints_summary(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipelines.run"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "records read" in result.stdout and "100,000" in result.stdout
    assert "dead letters" in result.stdout
    assert list((tmp_path / "output").rglob("part-*.jsonl"))


def test_early_firing_runs_locally_and_final_panes_are_complete(tmp_path):
    """--early_firing runs on the local streaming runner (the default local runner has no
    processing-time clock) and each group's last pane accounts for every decoded event. Which
    EARLY panes appear depends on how the source's bundles fall in time; the pane logic itself
    is proven with TestStream in tests/unit/test_windows_and_panes.py."""
    out = tmp_path / "out"
    result = run_cli("--source", "synthetic://?events=3000&rate=1000&late=0", "--early_firing", "1",
                     "--output", str(out))
    assert result.returncode == 0, result.stderr
    records = read_aggregates(out, "jsonl")
    assert records and all(r["pane"] in ("EARLY", "ON_TIME", "LATE") for r in records)
    last: dict[tuple, dict] = {}
    for r in records:
        key = (r["window_start"], r["region"], r["key"])
        if key not in last or r["pane_index"] > last[key]["pane_index"]:
            last[key] = r
    dead = [line for p in (out / "dead_letter").glob("*.jsonl") for line in p.read_bytes().splitlines()]
    assert sum(r["count"] for r in last.values()) == 3000 - len(dead)
