"""KPL-aggregated records through the CLI against kinesalite: aggregates made with aws-kinesis-agg's
aggregator, mixed with plain records and corrupt aggregates in one shard, read into aggregates
equal to an independent computation; a bounded run that stops inside an aggregate, a run killed
while it reads on from there, and a resumed run together count every event exactly once."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from pathlib import Path

import pytest

from io_connectors.kinesis_kpl import MAGIC
from io_connectors.kinesis_producer import kpl_aggregate
from io_connectors.positions import store_path
from tests.reliability.helpers import (
    BASE_MS,
    CLAIMED,
    assert_same_aggregates,
    dead_letters,
    dead_payload,
    encode,
    expected_aggregates,
    final_aggregates,
    good_events,
    kinesis_stream,
    read_panes,
    run_cli,
)
from tests.reliability.test_crash_resume import _kill_when

pytestmark = pytest.mark.integration

BOUNDARY_A = 10  # the aggregate that straddles the two parts holds A's last 10 events, then B's first 15
BOUNDARY_B = 15


def _puts(events: list[bytes], keys: list[str], rng: random.Random, corrupt: list[bytes]) -> list[dict]:
    """PutRecords entries for `events` in order: plain records and aggregates of 2..40 user records
    (some with explicit hash keys), with each of `corrupt` slipped in along the way."""
    puts, pos, corrupt = [], 0, list(corrupt)
    while pos < len(events):
        if rng.random() < 0.3:
            puts.append({"Data": events[pos], "PartitionKey": keys[pos]})
            pos += 1
        else:
            count = min(rng.randint(2, 40), len(events) - pos)
            with_hash_keys = rng.random() < 0.5
            user = [(keys[i], events[i], str(rng.randrange(2**128))) if with_hash_keys else (keys[i], events[i])
                    for i in range(pos, pos + count)]
            puts.append(_aggregate_put(user))
            pos += count
        if corrupt and rng.random() < 0.2:
            puts.append({"Data": corrupt.pop(), "PartitionKey": "corrupt"})
    return puts + [{"Data": data, "PartitionKey": "corrupt"} for data in corrupt]


def _aggregate_put(user: list[tuple]) -> dict:
    key, hash_key, data = kpl_aggregate(user)
    return {"Data": data, "PartitionKey": key, **({"ExplicitHashKey": hash_key} if hash_key else {})}


def _corrupt_aggregates() -> list[bytes]:
    """Aggregates of events nobody must count: two with a bad MD5, two with a body protobuf cannot read."""
    lost = encode(good_events(6, seed=9, prefix="lost"))
    bad_md5 = [kpl_aggregate([("k", lost[i]), ("k", lost[i + 1])])[2] for i in (0, 2)]
    bad_md5 = [data[:-1] + bytes([data[-1] ^ 0xFF]) for data in bad_md5]
    bodies = [b"\xff\xff\xff\xff" + lost[4], b"\x1a\xff" + lost[5]]
    return bad_md5 + [MAGIC + body + hashlib.md5(body).digest() for body in bodies]


def _args(stream: str, out: Path) -> list[str]:
    return ["--source", f"kinesis://{stream}?region=us-east-1", "--kinesis_start_position", "TRIM_HORIZON",
            "--kinesis_poll_interval", "0.2", "--streaming", "--resume", "--output", str(out)]


def test_kpl_aggregates_read_exactly_across_a_stop_and_a_kill_inside_an_aggregate(kinesis_service, tmp_path):
    client = kinesis_service.client()
    stream = kinesis_stream(client, 1, f"kpl-{uuid.uuid4().hex[:8]}")
    env = kinesis_service.env()
    out = tmp_path / "out"
    part_a = good_events(400, seed=3, prefix="a")
    # Part B is an hour later: each window, and each hour's files, are written by one run only.
    part_b = good_events(400, seed=4, start_ms=BASE_MS + 3_600_000, prefix="b")
    a, b = encode(part_a), encode(part_b)
    rng = random.Random(5)
    corrupt = _corrupt_aggregates()
    before = _puts(a[:-BOUNDARY_A], [e["key"] for e in part_a], rng, corrupt)
    boundary = _aggregate_put([(e["key"], data) for e, data in zip(part_a[-BOUNDARY_A:] + part_b[:BOUNDARY_B],
                                                                     a[-BOUNDARY_A:] + b[:BOUNDARY_B], strict=True)])
    after = _puts(b[BOUNDARY_B:], [e["key"] for e in part_b[BOUNDARY_B:]], rng, [])
    puts = [*before, boundary, *after]
    response = client.put_records(StreamName=stream, Records=puts)
    assert response["FailedRecordCount"] == 0
    boundary_sequence = response["Records"][len(before)]["SequenceNumber"]
    # Records the reader claims before it stops inside the boundary aggregate: every plain record
    # and corrupt aggregate counts one, every other aggregate its user records.
    first_claims = len(a) - BOUNDARY_A + len(corrupt) + BOUNDARY_A

    run_cli(env, *_args(stream, out), "--max_records", str(first_claims))
    store = Path(store_path(str(out), f"kinesis://{stream}?region=us-east-1"))
    committed = json.loads(store.read_text())["positions"]
    assert committed == {"shardId-000000000000": f"{boundary_sequence}:{BOUNDARY_A - 1}"}
    assert_same_aggregates(final_aggregates(read_panes(out)), expected_aggregates(part_a))
    dead = dead_letters(out)
    assert sorted(dead_payload(d) for d in dead) == sorted(corrupt)  # each corrupt aggregate, whole, once
    reasons = [d["error"] for d in dead]
    assert sum("MD5 trailer" in r for r in reasons) == 2 and all(r.startswith("KPL aggregate: ") for r in reasons)
    assert all(d["source"].startswith(f"kinesis://{stream}/shardId-000000000000@") for d in dead)
    files_a = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}

    # Resumed inside the boundary aggregate, then killed while its read goes on: commits nothing.
    _kill_when(env, [*_args(stream, out), "--max_read_time", "600"], lambda line: bool(CLAIMED.search(line)))
    assert json.loads(store.read_text())["positions"] == committed

    run_cli(env, *_args(stream, out), "--kinesis_read_to_latest")
    panes = read_panes(out)
    on_time = {k[:3]: v for k, v in panes.items() if k[3] == "ON_TIME"}
    assert_same_aggregates(on_time, expected_aggregates(part_a + part_b))
    assert set(panes) == {(*k, "ON_TIME", 0) for k in on_time}
    assert {p: p.stat().st_mtime_ns for p in files_a} == files_a  # part A was not read again
    assert len(dead_letters(out)) == len(corrupt)
    last = response["Records"][-1]["SequenceNumber"]
    assert json.loads(store.read_text())["positions"] == {"shardId-000000000000": last}
