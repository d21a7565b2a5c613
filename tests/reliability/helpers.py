"""Event builders, an independent expected-aggregate computation and output readers.

The expected side uses only the standard library (json, math, sorted lists): it shares no code
with the pipeline, so a bug there cannot hide in both.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parents[2]
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
REGIONS = ("us-east-1", "eu-west-1")

# The CLI with a marker line on stderr after every claim of the stream readers (read_core's
# listen_to_claims hook): what tests follow to act mid-read. `log_levels` raises chosen loggers.
CLAIMED = re.compile(r"^TEST-CLAIMED (\d+)$")


def claim_marking_cli(**log_levels: str) -> str:
    """`python -c` source that runs the CLI with the claim markers (and the given logger levels)."""
    levels = "".join(f"logging.getLogger({name!r}).setLevel(logging.{level}); " for name, level in log_levels.items())
    return (
        "import logging, runpy, sys; logging.basicConfig(level=logging.WARNING); " + levels
        + "from io_connectors.read_core import listen_to_claims; "
        "listen_to_claims(lambda n: print(f'TEST-CLAIMED {n}', file=sys.stderr, flush=True)); "
        "runpy.run_module('pipelines.run', run_name='__main__')"
    )


def good_events(
    n: int, seed: int = 1, start_ms: int = BASE_MS, span_ms: int = 600_000, prefix: str = "e"
) -> list[dict]:
    """`n` valid events with unique ids, epoch-ms times in [start_ms, start_ms + span_ms).

    Keep groups (window x region x 8 keys) under 256 events, where quantiles and distinct ids
    are exact rather than sketched."""
    rng = random.Random(seed)
    return [
        {
            "event_id": f"{prefix}{i}",
            "event_time": start_ms + rng.randrange(span_ms),
            "region": rng.choice(REGIONS),
            "key": f"k{rng.randrange(8)}",
            "value": rng.randrange(1000) if i % 3 else round(rng.uniform(0, 100), 3),
        }
        for i in range(n)
    ]


def encode(events: Iterable[dict]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def malformed_json(i: int, *, huge: bool = True) -> list[tuple[str, bytes]]:
    """One record of every JSON malformation kind, ids tagged with `i`; (kind, payload)."""
    good = {"event_id": f"bad{i}", "event_time": BASE_MS + 1000, "region": "us-east-1", "key": "k0", "value": 1}
    kinds = [
        ("bad_json", b'{"event_id": "bad%d", "event_time": ' % i),
        ("wrong_type_value", json.dumps({**good, "value": "twelve"}).encode()),
        ("wrong_type_time", json.dumps({**good, "event_time": [1, 2]}).encode()),
        ("missing_time", json.dumps({k: v for k, v in good.items() if k != "event_time"}).encode()),
        ("invalid_utf8", b'{"event_id": "bad%d", "key": "\xff\xfe", "value": 1}' % i),
        ("nan", json.dumps({**good, "value": float("nan")}).encode()),  # json writes NaN: not JSON
        ("infinity", json.dumps({**good, "value": float("inf")}).encode()),
        ("far_future", json.dumps({**good, "event_time": 4_200_000_000_000}).encode()),
        ("before_1970", json.dumps({**good, "event_time": -86_400_000}).encode()),
    ]
    if huge:
        kinds.append(("huge", json.dumps({**good, "pad": "x" * (1 << 20)}).encode()))
    return kinds


def expected_aggregates(events: Iterable[dict], window_s: int = 60) -> dict[tuple, dict]:
    """(window_start, region, key) -> exact metrics of the given (valid) events."""
    groups: dict[tuple, list[tuple[float, str]]] = defaultdict(list)
    for event in events:
        t = event["event_time"]
        start = t - t % (window_s * 1000)
        iso = datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        groups[(iso, event["region"], event["key"])].append((float(event["value"]), event["event_id"]))
    out = {}
    for key, rows in groups.items():
        values = sorted(v for v, _ in rows)
        quantiles = {
            name: values[max(0, math.ceil(rank * len(values)) - 1)]
            for name, rank in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        }
        out[key] = {
            "count": len(values), "sum": math.fsum(values), "min": values[0], "max": values[-1],
            "mean": math.fsum(values) / len(values), "distinct_ids": len({i for _, i in rows}), **quantiles,
        }
    return out


def read_records(path: Path) -> list[dict]:
    """The records of one aggregate file, by its extension (jsonl, parquet or avro)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".avro":
        import fastavro

        with path.open("rb") as handle:
            return list(fastavro.reader(handle))
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_panes(*outputs: Path) -> dict[tuple, dict]:
    """Union of aggregate files (any format) under `outputs`, keyed by (window, region, key, pane,
    pane_index).

    A key seen twice must carry the same metrics (a re-written pane), else the union is ambiguous."""
    rows: dict[tuple, dict] = {}
    for out in outputs:
        files = [path for ext in ("jsonl", "parquet", "avro") for path in out.rglob(f"*.{ext}")]
        for path in sorted(files):
            if "dead_letter" in path.parts or path.name.startswith("."):  # dead letters, files in flight
                continue
            for record in read_records(path):
                key = (record["window_start"], record["region"], record["key"], record["pane"], record["pane_index"])
                if key in rows:
                    assert _metrics(rows[key]) == _metrics(record), f"pane {key} written twice with different data"
                rows[key] = record
    return rows


def _metrics(record: dict) -> dict:
    return {k: record[k] for k in ("count", "sum", "min", "max", "distinct_ids")}


PANE_ORDER = {"EARLY": 0, "ON_TIME": 1, "LATE": 2}


def final_aggregates(panes: dict[tuple, dict]) -> dict[tuple, dict]:
    """The last pane of each (window, region, key): accumulating panes make it the answer."""
    last: dict[tuple, dict] = {}
    for (window, region, key, _pane, _index), record in sorted(
        panes.items(), key=lambda kv: (PANE_ORDER[kv[0][3]], kv[0][4])
    ):
        last[(window, region, key)] = record
    return last


def assert_same_aggregates(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected), (sorted(set(actual) ^ set(expected))[:5])
    for key, want in expected.items():
        got = actual[key]
        for field in ("count", "min", "max", "p50", "p95", "p99", "distinct_ids"):
            assert got[field] == want[field], (key, field, got[field], want[field])
        for field in ("sum", "mean"):
            assert math.isclose(got[field], want[field], rel_tol=1e-9), (key, field, got[field], want[field])


def dead_letters(out: Path) -> list[dict]:
    """Every dead-letter record written to the default place of a run writing to `out`, beside it."""
    records = []
    for path in out.with_name(out.name + "_dead_letter").rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            records += [json.loads(line) for line in path.read_text().splitlines() if line]
    return records


def dead_payload(record: dict) -> bytes:
    if "payload_b64" in record:
        import base64

        return base64.b64decode(record["payload_b64"])
    return record["payload"].encode()


def run_cli(env: dict, *argv: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m pipelines.run ARGV` in a subprocess with `env`."""
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.run", *argv],
        env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )
    if check:
        assert done.returncode == 0, done.stderr[-4000:]
    return done


# Runs the CLI as a child and prints its peak resident memory: ru_maxrss of the children is the
# child's own high-water mark, and this wrapper never grows beyond a bare interpreter.
_PEAK_RUN = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
print("peak_mb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
sys.exit(done.returncode)
"""


def run_cli_measuring_peak(*argv: str, timeout: float = 600) -> tuple[str, int]:
    """`python -m pipelines.run ARGV` (exit 0 asserted): its stdout and its peak RSS in MB."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RUN, sys.executable, "-m", "pipelines.run", *argv],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    stdout, _, peak = done.stdout.rpartition("peak_mb ")
    return stdout, int(peak)


def write_lines(path: Path, records: Iterable[bytes]) -> Path:
    path.write_bytes(b"".join(r + b"\n" for r in records))
    return path


def kinesis_stream(client: Any, shards: int, name: str) -> str:
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 200})
    return name


def put_kinesis(client: Any, stream: str, records: list[bytes]) -> None:
    """PutRecords in pages of 500 (the API cap), failing on any rejected record."""
    for start in range(0, len(records), 500):
        page = records[start:start + 500]
        response = client.put_records(
            StreamName=stream, Records=[{"Data": r, "PartitionKey": str(start + i)} for i, r in enumerate(page)]
        )
        assert response.get("FailedRecordCount", 0) == 0, response
