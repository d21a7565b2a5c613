"""Kinesis reader and producer over the wire against kinesalite (real GetRecords/PutRecords caps,
split/merge with closed shards that end like AWS's): pipeline CLI runs with exact aggregates,
checkpoint/resume, resharding while records flow, throttling and a deleted stream."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
import orjson
import pytest
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker

from io_connectors.kinesis import (
    KinesisReadConfig,
    KinesisShard,
    ReadFromKinesis,
    StreamNotFound,
    _ReadShard,
)
from io_connectors.kinesis_core import SHARDS
from io_connectors.synthetic import SyntheticConfig, generate
from tests.services.throttling import ThrottlingProxy

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _stream(client, shards: int) -> str:
    name = f"events-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 200})
    return name


def _records(n: int, seed: int = 7) -> list[bytes]:
    # Empty payloads cannot be put; every other malformed kind is kept for the dead letters.
    return [r for r in generate(SyntheticConfig(events=n, seed=seed, keys=20), 0, n) if r]


def _produce(env: dict, stream: str, records: list[bytes], tmp_path: Path) -> dict:
    path = tmp_path / f"{stream}.jsonl"
    path.write_bytes(b"\n".join(records) + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "io_connectors.kinesis_producer", "--stream", stream, "--from-file", str(path)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sent"] == len(records)
    return summary


def expected_aggregates(records: list[bytes], window_s: int = 60) -> tuple[dict, int]:
    """Independent of the pipeline: plain json, sorted lists, exact quantiles."""
    groups: dict[tuple, list[tuple[float, str]]] = defaultdict(list)
    dead = 0
    for raw in records:
        try:
            event = json.loads(raw)
            t = event["event_time"]
            if not isinstance(t, int):
                raise ValueError("time")
            value = event["value"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("value")
        except (ValueError, KeyError):
            dead += 1
            continue
        start = t - t % (window_s * 1000)
        iso = datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        groups[(iso, event["region"], event["key"])].append((float(value), event["event_id"]))
    out = {}
    for key, rows in groups.items():
        values = sorted(v for v, _ in rows)
        q = {name: values[max(0, math.ceil(rank * len(values)) - 1)] for name, rank in
             (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
        out[key] = {"count": len(values), "sum": math.fsum(values), "min": values[0], "max": values[-1],
                    "mean": math.fsum(values) / len(values), "distinct_ids": len({i for _, i in rows}), **q}
    return out, dead


def read_output(out: Path) -> tuple[dict, int]:
    rows = {}
    for path in out.rglob("*.jsonl"):
        if "dead_letter" in path.parts:
            continue
        for line in path.read_text().splitlines():
            record = json.loads(line)
            key = (record["window_start"], record["region"], record["key"])
            assert key not in rows, f"duplicate aggregate {key}"
            rows[key] = record
    dead_dir = out.with_name(out.name + "_dead_letter")  # the default: beside the output
    dead = sum(len(p.read_text().splitlines()) for p in dead_dir.rglob("*") if p.is_file()
               and not p.name.startswith("."))
    return rows, dead


def assert_same_aggregates(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, want in expected.items():
        got = actual[key]
        for field in ("count", "min", "max", "p50", "p95", "p99", "distinct_ids"):
            assert got[field] == want[field], (key, field, got[field], want[field])
        for field in ("sum", "mean"):
            assert math.isclose(got[field], want[field], rel_tol=1e-9), (key, field)
        assert got["pane"] == "ON_TIME"


def run_pipeline(env: dict, stream: str, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pipelines.run", "--source", f"kinesis://{stream}?region=us-east-1",
            "--kinesis_start_position", "TRIM_HORIZON", "--kinesis_poll_interval", "0.2",
            "--kinesis_discovery_interval", "0.5", "--output", str(out), *extra]
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.fixture
def env(kinesis_service, monkeypatch):
    """The fixture's AWS environment, for subprocesses and for in-process clients alike."""
    for key, value in kinesis_service.env().items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **kinesis_service.env()}


def test_cli_max_records_gives_exact_aggregates(kinesis_service, env, tmp_path):
    # 3 shards x ~12k records: each shard needs two GetRecords pages under the 10,000-record cap.
    client = kinesis_service.client()
    stream = _stream(client, 3)
    records = _records(36_000)
    summary = _produce(env, stream, records, tmp_path)
    assert summary["put_calls"] >= len(records) / 500  # the 500-record PutRecords cap
    done = run_pipeline(env, stream, tmp_path / "out", "--max_records", str(len(records)))
    assert f"{len(records):,}" in done.stdout
    actual, dead = read_output(tmp_path / "out")
    expected, expected_dead = expected_aggregates(records)
    assert_same_aggregates(actual, expected)
    assert dead == expected_dead > 0


def test_cli_read_to_latest_streaming_closes_windows(kinesis_service, env, tmp_path):
    client = kinesis_service.client()
    stream = _stream(client, 2)
    records = _records(4_000, seed=11)
    _produce(env, stream, records, tmp_path)
    run_pipeline(env, stream, tmp_path / "out", "--kinesis_read_to_latest", "--streaming")
    actual, dead = read_output(tmp_path / "out")
    expected, expected_dead = expected_aggregates(records)
    assert_same_aggregates(actual, expected)
    assert dead == expected_dead


def _drive(dofn: _ReadShard, shard: KinesisShard, restriction, estimator_state=None, checkpoint_after=None):
    """Runs process() like a runner: returns (outputs, residual or None, estimator state)."""
    tracker = ThreadsafeRestrictionTracker(dofn.create_tracker(restriction))
    estimator = dofn.create_watermark_estimator(estimator_state or dofn.initial_estimator_state(shard, restriction))
    outputs = []
    for index, value in enumerate(dofn.process(shard, RestrictionTrackerView(tracker), estimator)):
        outputs.append(value.value)
        if checkpoint_after is not None and index + 1 == checkpoint_after:
            tracker.defer_remainder()  # the runner asks for a checkpoint while the read is mid-stream
    tracker.check_done()
    status = tracker.deferred_status()
    return outputs, (status[0] if status else None), estimator.get_estimator_state()


def test_checkpoint_and_resume_reads_every_record_once(kinesis_service, env):
    client = kinesis_service.client()
    stream = _stream(client, 1)
    for chunk in range(6):
        client.put_records(StreamName=stream, Records=[
            {"Data": f"r{chunk * 500 + i}".encode(), "PartitionKey": "k"} for i in range(500)])
    shard_id = client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    config = KinesisReadConfig(stream=stream, region="us-east-1", endpoint_url=kinesis_service.endpoint_url,
                               start_position="TRIM_HORIZON", records_per_call=700, poll_interval_s=0.1,
                               read_id=uuid.uuid4().hex)
    shard = KinesisShard(stream, shard_id)
    seen: list[str] = []
    restriction = _ReadShard(config).initial_restriction(shard)
    state = None
    for _round in range(20):
        dofn = _ReadShard(config)  # a fresh worker: no cached iterator survives the checkpoint
        dofn.setup()
        outputs, residual, state = _drive(dofn, shard, restriction, state, checkpoint_after=1)
        for batch in outputs:
            seen += [bytes(r).decode() for r in batch.records]
            assert batch.source == f"kinesis://{stream}/{shard_id}"
            assert len(batch.positions) == len(batch.arrival_ms) == len(batch.partition_keys)
        if residual is None or len(seen) == 3000:
            break
        assert residual.start.kind == "AFTER_SEQUENCE_NUMBER"
        assert int(residual.start.sequence) == int(outputs[-1].positions[-1]) if outputs else True
        restriction = residual
    assert seen == [f"r{i}" for i in range(3000)]  # in order, none twice, none missing


def test_resharding_split_then_merge_while_records_flow(kinesis_service, env, tmp_path):
    client = kinesis_service.client()
    stream = _stream(client, 2)
    total = 3_000
    put_log: list[str] = []

    def produce() -> None:
        rng = random.Random(3)
        for i in range(0, total, 100):
            records = [{"Data": f"m{j}".encode(), "PartitionKey": str(rng.random())} for j in range(i, i + 100)]
            client.put_records(StreamName=stream, Records=records)
            put_log.extend(r["Data"].decode() for r in records)
            if i == 1_000:
                first = client.list_shards(StreamName=stream)["Shards"][0]
                low, high = (int(first["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
                client.split_shard(StreamName=stream, ShardToSplit=first["ShardId"],
                                   NewStartingHashKey=str((low + high) // 2))
                time.sleep(0.3)
            if i == 2_000:
                open_shards = [s for s in client.list_shards(StreamName=stream)["Shards"]
                               if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
                open_shards.sort(key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
                client.merge_shards(StreamName=stream, ShardToMerge=open_shards[0]["ShardId"],
                                    AdjacentShardToMerge=open_shards[1]["ShardId"])
                time.sleep(0.3)
            time.sleep(0.05)

    producer = threading.Thread(target=produce)
    producer.start()
    log_path = tmp_path / "reads.jsonl"
    read = ReadFromKinesis(stream, "us-east-1", endpoint_url=kinesis_service.endpoint_url,
                           start_position="TRIM_HORIZON", max_records=total, poll_interval_s=0.2,
                           discovery_interval_s=0.3)

    def note(batch) -> None:
        with open(log_path, "ab") as handle:
            handle.write(orjson.dumps({"shard": batch.shard_id, "t": time.monotonic(),
                                       "data": [bytes(r).decode() for r in batch.records]}) + b"\n")

    with beam.Pipeline() as pipeline:
        pipeline | read | beam.Map(note)
    producer.join()
    reads = [json.loads(line) for line in log_path.read_text().splitlines()]
    seen = [d for r in reads for d in r["data"]]
    assert sorted(seen) == sorted(put_log) and len(seen) == len(set(seen)) == total
    shards = {s["ShardId"]: s for s in client.list_shards(StreamName=stream)["Shards"]}
    assert len(shards) == 5  # 2 + split (2 children) + merge (1 child)
    first_read = defaultdict(lambda: math.inf)
    last_read = defaultdict(lambda: -math.inf)
    for r in reads:
        first_read[r["shard"]] = min(first_read[r["shard"]], r["t"])
        last_read[r["shard"]] = max(last_read[r["shard"]], r["t"])
    checked = 0
    for shard_id, shard in shards.items():
        for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")):
            if parent and shard_id in first_read and parent in last_read:
                assert last_read[parent] < first_read[shard_id], f"{shard_id} read before parent {parent} ended"
                checked += 1
    assert checked >= 3


def test_throttled_get_records_are_survived_with_exact_aggregates(kinesis_service, env, tmp_path):
    client = kinesis_service.client()
    stream = _stream(client, 2)
    records = _records(6_000, seed=23)
    _produce(env, stream, records, tmp_path)
    proxy = ThrottlingProxy(kinesis_service.endpoint_url, limit=6)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        proxied = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.server_address[1]}",
                   "AWS_ENDPOINT_URL_KINESIS": f"http://127.0.0.1:{proxy.server_address[1]}"}
        done = run_pipeline(proxied, stream, tmp_path / "out", "--kinesis_read_to_latest")
    finally:
        proxy.shutdown()
    assert proxy.throttled >= 3, (proxy.throttled, proxy.get_records)
    # Our per-shard backoff handled them (the SDK's own retries are off): it says so in the log.
    assert done.stderr.count("throttled (ProvisionedThroughputExceededException") == proxy.throttled
    actual, dead = read_output(tmp_path / "out")
    expected, expected_dead = expected_aggregates(records)
    assert_same_aggregates(actual, expected)
    assert dead == expected_dead


def test_deleted_stream_is_a_clear_error(kinesis_service, env):
    client = kinesis_service.client()
    stream = _stream(client, 1)
    client.put_records(StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "k"}])
    shard_id = client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    config = KinesisReadConfig(stream=stream, region="us-east-1", endpoint_url=kinesis_service.endpoint_url,
                               start_position="TRIM_HORIZON", read_id=uuid.uuid4().hex)
    dofn = _ReadShard(config)
    dofn.setup()
    client.delete_stream(StreamName=stream)
    time.sleep(0.3)
    with pytest.raises(StreamNotFound, match=f"stream '{stream}'.*deleted"):
        _drive(dofn, KinesisShard(stream, shard_id), dofn.initial_restriction(KinesisShard(stream, shard_id)))
    with pytest.raises(StreamNotFound, match="does not exist"):
        ReadFromKinesis(stream, "us-east-1", endpoint_url=kinesis_service.endpoint_url).expand(
            beam.Pipeline() | beam.Impulse())
    # A deleted stream is an error, never the clean end of a closed shard: children would not wait for it.
    assert not SHARDS.is_finished(config.read_id, shard_id)
