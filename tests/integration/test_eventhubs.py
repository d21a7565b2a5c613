"""Event Hubs reader and writer over the wire, against tansu (a Kafka-protocol broker standing
in for the Event Hubs Kafka endpoint).

What tansu 0.6 cannot do, and how these tests cope (see docs/eventhubs.md):
- no CreatePartitions API: a partition is added by raising the topic's partition count in
  the broker's own storage, the way Event Hubs scales partitions through its control plane;
- memory storage is lost on restart: the restart and partition tests use a tansu whose
  storage is S3 on the moto server (state survives the broker process);
- ListOffsets(latest) answers the first offset of the partition's last record batch + 1, not
  the end: the test of "latest" ends each partition with a batch of one record, where that
  answer is the end (as Event Hubs and Apache Kafka always answer);
- offsets-for-times answers 0: the reader's own start-timestamp filter keeps the result right.
"""

from __future__ import annotations

import glob
import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.eventhubs import EventHubsError, EventHubsTarget, ReadFromEventHubs, ReadSettings
from io_connectors.eventhubs_writer import WriteToEventHubs
from tests.services import KafkaService, MotoService
from tests.services._base import HOST, LocalProcess, free_port
from tests.services.kafka import _probe, create_hub, produce, tansu_binary

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

# ------------------------------------------------------------------------------- helpers


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_events(n: int, tag: str, keys: int = 7) -> list[dict[str, Any]]:
    regions = ("eu-west-1", "us-east-1", "ap-southeast-1")
    return [
        {
            "event_id": f"{tag}-{i}",
            "event_time": BASE_MS + (i * 7919) % 300_000,  # spread over 5 one-minute windows
            "region": regions[i % 3],
            "key": f"k{(i * 31) % keys}",
            "value": round(((i * 37) % 1000) / 7.0, 3),
        }
        for i in range(n)
    ]


def local_target(bootstrap: str, hub: str, group: str = "analytics") -> EventHubsTarget:
    return EventHubsTarget("local", hub, consumer_group=group, bootstrap=bootstrap, security_protocol="plaintext",
                           connect_timeout_s=10)


# Batches collected by in-process pipelines (the DirectRunner runs DoFns in this process).
COLLECTED: dict[str, list[tuple[int, int, bytes]]] = defaultdict(list)
_COLLECT_LOCK = threading.Lock()


class _Collect(beam.DoFn):
    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    def process(self, batch: Any) -> None:
        with _COLLECT_LOCK:
            COLLECTED[self._run_id].extend(
                (batch.partition, offset, value) for offset, value in zip(batch.offsets, batch.values, strict=True)
            )


def read_in_process(target: EventHubsTarget, settings: ReadSettings) -> list[tuple[int, int, bytes]]:
    run_id = uuid.uuid4().hex
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as pipeline:
        pipeline | ReadFromEventHubs(target, settings) | beam.ParDo(_Collect(run_id))
    return COLLECTED.pop(run_id, [])


def assert_exactly_once(read: list[tuple[int, int, bytes]], expected_values: list[bytes]) -> None:
    positions = [(p, o) for p, o, _ in read]
    assert len(positions) == len(set(positions)), "a record was read twice"
    assert sorted(v for _, _, v in read) == sorted(expected_values)


# --------------------------------------------------------------------- CLI end to end


def _expected_aggregates(events: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        start = event["event_time"] // 60_000 * 60_000
        stamp = datetime.fromtimestamp(start / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        groups[(stamp, event["region"], event["key"])].append(event)
    expected = {}
    for group_key, members in groups.items():
        values = sorted(e["value"] for e in members)
        n = len(values)
        expected[group_key] = {
            "count": n,
            "sum": math.fsum(values),
            "min": values[0],
            "max": values[-1],
            "mean": math.fsum(values) / n,
            # Inclusive rank (KLL's definition; exact below 256 values a group).
            "p50": values[max(0, math.ceil(0.50 * n) - 1)],
            "p95": values[max(0, math.ceil(0.95 * n) - 1)],
            "p99": values[max(0, math.ceil(0.99 * n) - 1)],
            "distinct_ids": len({e["event_id"] for e in members}),
        }
    return expected


def test_cli_bounded_read_gives_exact_aggregates(kafka_service: KafkaService, tmp_path: Path) -> None:
    hub = _name("orders")
    create_hub(kafka_service.bootstrap, hub, partitions=4)
    events = make_events(1200, "cli")
    bad = [b"{not json", b'{"event_id": "x", "region": "eu-west-1", "key": "k1", "value": 1}']  # no time
    payloads = [json.dumps(e).encode() for e in events] + bad
    produce(kafka_service.bootstrap, hub, payloads, partition_of=lambda i: i % 4)
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "pipelines.run",
        "--source", f"eventhubs://local/{hub}?consumer_group=analytics",
        "--kafka_bootstrap", kafka_service.bootstrap,
        "--eventhubs_security_protocol", "plaintext",
        "--max_records", str(len(payloads)),
        "--max_read_time", "120",  # safety net only: max_records ends the read
        "--window", "fixed:60",
        "--output", str(out),
    ]
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=170,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for path in glob.glob(str(out / "**" / "*.jsonl"), recursive=True)
            if "dead_letter" not in path for line in Path(path).read_text().splitlines() if line]
    actual = {(r["window_start"], r["region"], r["key"]): r for r in rows}
    assert len(actual) == len(rows), "one row per window x region x key"
    expected = _expected_aggregates(events)
    assert set(actual) == set(expected)
    for group_key, want in expected.items():
        got = actual[group_key]
        for metric, value in want.items():
            assert got[metric] == pytest.approx(value, rel=1e-9, abs=1e-9), (group_key, metric)
        assert got["pane"] == "ON_TIME"
    dead_dir = out.with_name(out.name + "_dead_letter")  # the default: beside the output
    dead = [json.loads(line) for path in glob.glob(str(dead_dir / "**" / "*"), recursive=True)
            if os.path.isfile(path) for line in Path(path).read_text().splitlines() if line]
    assert len(dead) == len(bad)
    assert all(d["source"].startswith(f"eventhubs://{hub}/") for d in dead)


def test_cli_missing_hub_is_a_clear_error(kafka_service: KafkaService, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "pipelines.run", "--source", "eventhubs://local/no-such-hub",
            "--kafka_bootstrap", kafka_service.bootstrap, "--eventhubs_security_protocol", "plaintext",
            "--max_records", "1", "--output", str(tmp_path / "out")]
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Event hub 'no-such-hub' does not exist in namespace 'local'" in result.stderr


def test_cli_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    argv = [sys.executable, "-m", "pipelines.run", "--source", "eventhubs://local/orders",
            "--kafka_bootstrap", f"{HOST}:{port}", "--eventhubs_security_protocol", "plaintext",
            "--eventhubs_connect_timeout", "3", "--max_records", "1", "--output", str(tmp_path / "out")]
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"Cannot reach {HOST}:{port}" in result.stderr and "--kafka_bootstrap" in result.stderr


# ------------------------------------------------------------------ checkpoint / resume


def test_checkpoints_within_a_run_read_every_record_once(kafka_service: KafkaService) -> None:
    hub = _name("ckpt")
    create_hub(kafka_service.bootstrap, hub, partitions=3)
    payloads = [f"r{i}".encode() for i in range(600)]
    produce(kafka_service.bootstrap, hub, payloads, partition_of=lambda i: i % 3)
    # Batches of 7 and very short process() calls: hundreds of checkpoints and resumes.
    settings = ReadSettings(read_to_latest=True, batch_size=7, max_call_s=0.01, max_partitions=3)
    read = read_in_process(local_target(kafka_service.bootstrap, hub), settings)
    assert_exactly_once(read, payloads)


def test_resume_from_committed_offsets_reads_every_record_once(kafka_service: KafkaService) -> None:
    hub = _name("resume")
    create_hub(kafka_service.bootstrap, hub, partitions=3)
    payloads = [f"r{i}".encode() for i in range(450)]
    produce(kafka_service.bootstrap, hub, payloads, partition_of=lambda i: i % 3)
    target = local_target(kafka_service.bootstrap, hub, group=_name("group"))
    # Run 1 stops after 200 records (as if the job was stopped) and commits on finalization.
    first = read_in_process(target, ReadSettings(max_records=200, batch_size=25, commit_offsets=True,
                                                 max_partitions=3))
    assert len(first) == 200
    # Run 2 resumes from the consumer group's committed offsets and reads the rest.
    second = read_in_process(target, ReadSettings(start_position="committed", read_to_latest=True,
                                                  max_partitions=3))
    assert len(second) == 250
    assert_exactly_once(first + second, payloads)


def test_start_at_latest_and_at_timestamp(kafka_service: KafkaService) -> None:
    from confluent_kafka import Producer

    hub = _name("start")
    create_hub(kafka_service.bootstrap, hub, partitions=2)
    producer = Producer({"bootstrap.servers": kafka_service.bootstrap})
    for i in range(10):
        producer.produce(hub, value=f"old{i}".encode(), partition=i % 2, timestamp=BASE_MS)
    for i in range(6):
        if i >= 4:  # each partition's last event in a batch of its own: tansu's ListOffsets(latest) is then right
            assert producer.flush(30) == 0
        producer.produce(hub, value=f"new{i}".encode(), partition=i % 2, timestamp=BASE_MS + 60_000)
    assert producer.flush(30) == 0
    target = local_target(kafka_service.bootstrap, hub)
    since = read_in_process(target, ReadSettings(start_position="timestamp", start_timestamp_ms=BASE_MS + 1,
                                                 read_to_latest=True, max_partitions=2))
    assert sorted(v for _, _, v in since) == sorted(f"new{i}".encode() for i in range(6))

    done = threading.Event()

    def late_producer() -> None:
        time.sleep(3)  # after the reader has resolved "latest"
        produce(kafka_service.bootstrap, hub, [b"after0", b"after1"], partition_of=lambda i: i % 2)
        done.set()

    thread = threading.Thread(target=late_producer)
    thread.start()
    latest = read_in_process(target, ReadSettings(start_position="latest", max_records=2, max_read_time_s=60,
                                                  max_partitions=2))
    thread.join()
    assert sorted(v for _, _, v in latest) == [b"after0", b"after1"]


# ----------------------------------------------- tansu with persistent (S3) storage


@pytest.fixture
def durable_kafka(moto_service: MotoService) -> Iterator[tuple[KafkaService, Any]]:
    """A private tansu whose log lives in S3 on the moto server, so it survives restarts.

    TODO(tests/services): move into tests/services/kafka.py as start_kafka(storage_engine=...).
    """
    from tests.services.kafka import KafkaService as _Kafka

    bucket = _name("tansu")
    s3 = moto_service.client("s3")
    s3.create_bucket(Bucket=bucket)
    port = free_port()
    url = f"tcp://{HOST}:{port}"
    env = {
        "NO_COLOR": "1",
        "AWS_ENDPOINT": moto_service.endpoint_url,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": moto_service.access_key_id,
        "AWS_SECRET_ACCESS_KEY": moto_service.secret_access_key,
        "AWS_DEFAULT_REGION": moto_service.region,
    }
    handle = LocalProcess("tansu-s3", [str(tansu_binary()), "broker", "--listener-url", url,
                                       "--advertised-listener-url", url, "--storage-engine", f"s3://{bucket}/"],
                          _probe(port), env=env)
    handle.start()
    try:
        yield _Kafka(bootstrap=f"{HOST}:{port}", handle=handle), (s3, bucket)
    finally:
        handle.close()


def add_partitions(s3: Any, bucket: str, hub: str, count: int) -> None:
    """Raise the partition count in tansu's cluster metadata (its control plane)."""
    key = "clusters/tansu_cluster/meta.json"
    meta = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    meta["topics"][hub]["topic"]["num_partitions"] = count
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(meta).encode())


def _run_in_thread(target: EventHubsTarget, settings: ReadSettings) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["read"] = read_in_process(target, settings)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _collected_now() -> int:
    with _COLLECT_LOCK:
        return sum(len(v) for v in COLLECTED.values())


def test_partition_added_mid_stream_is_read(durable_kafka: tuple[KafkaService, Any]) -> None:
    kafka, (s3, bucket) = durable_kafka
    hub = _name("grow")
    create_hub(kafka.bootstrap, hub, partitions=2)
    before = [f"old{i}".encode() for i in range(100)]
    produce(kafka.bootstrap, hub, before, partition_of=lambda i: i % 2)
    after = [f"new{i}".encode() for i in range(60)]
    settings = ReadSettings(max_records=len(before) + len(after), max_read_time_s=120, max_partitions=4,
                            discovery_interval_s=0.5)
    thread, box = _run_in_thread(local_target(kafka.bootstrap, hub), settings)
    _wait_for(lambda: _collected_now() >= len(before) or "error" in box, 60, "the first records")
    add_partitions(s3, bucket, hub, 3)
    from confluent_kafka.admin import AdminClient

    _wait_for(lambda: len(AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(hub, timeout=5)
                          .topics[hub].partitions) == 3, 30, "partition 2 in metadata")
    produce(kafka.bootstrap, hub, after, partition_of=lambda i: 2)
    thread.join(150)
    assert not thread.is_alive(), "the bounded read did not finish"
    assert "error" not in box, box.get("error")
    read = box["read"]
    assert_exactly_once(read, before + after)
    assert {p for p, _, v in read if v.startswith(b"new")} == {2}


def test_broker_restart_during_the_read_loses_nothing(durable_kafka: tuple[KafkaService, Any]) -> None:
    kafka, _ = durable_kafka
    hub = _name("restart")
    create_hub(kafka.bootstrap, hub, partitions=3)
    phase1 = [f"a{i}".encode() for i in range(300)]
    phase2 = [f"b{i}".encode() for i in range(300)]  # written just before the broker goes down
    phase3 = [f"c{i}".encode() for i in range(300)]  # written after it is back
    produce(kafka.bootstrap, hub, phase1, partition_of=lambda i: i % 3)
    settings = ReadSettings(max_records=900, max_read_time_s=120, max_partitions=3, batch_size=50)
    thread, box = _run_in_thread(local_target(kafka.bootstrap, hub), settings)
    _wait_for(lambda: _collected_now() >= len(phase1) or "error" in box, 60, "phase 1 read")
    produce(kafka.bootstrap, hub, phase2, partition_of=lambda i: i % 3)
    with kafka.outage(seconds=3):  # the reader keeps polling a dead broker meanwhile
        assert not kafka.running
    assert thread.is_alive(), "the reader gave up during the outage"
    produce(kafka.bootstrap, hub, phase3, partition_of=lambda i: i % 3)
    thread.join(150)
    assert not thread.is_alive(), "the bounded read did not finish"
    assert "error" not in box, box.get("error")
    assert_exactly_once(box["read"], phase1 + phase2 + phase3)


# --------------------------------------------------------------------------------- writer


def test_writer_delivers_every_event_keyed_by_field(kafka_service: KafkaService) -> None:
    hub = _name("sink")
    create_hub(kafka_service.bootstrap, hub, partitions=4)
    events = make_events(500, "w", keys=9)
    target = local_target(kafka_service.bootstrap, hub)
    with beam.Pipeline() as pipeline:
        pipeline | beam.Create(events) | WriteToEventHubs(target, key_field="key")  # idempotent by default
    read = read_in_process(target, ReadSettings(read_to_latest=True, max_partitions=4))
    assert sorted(json.loads(v)["event_id"] for _, _, v in read) == sorted(e["event_id"] for e in events)
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    for partition, _, value in read:
        partitions_of_key[json.loads(value)["key"]].add(partition)
    assert all(len(p) == 1 for p in partitions_of_key.values()), "a key spread over partitions"
    assert len({p for p, _, _ in read}) > 1


def test_writer_surfaces_delivery_errors(tmp_path: Path) -> None:
    target = EventHubsTarget("local", "orders", bootstrap=f"{HOST}:{free_port()}", security_protocol="plaintext")
    with pytest.raises(Exception, match="were not delivered") as info:
        with beam.Pipeline() as pipeline:
            (pipeline | beam.Create([b"a", b"b", b"c"])
             | WriteToEventHubs(target, producer_config={"message.timeout.ms": 2000}, flush_timeout_s=10))
    assert "3 of 3 events" in str(info.value) and "Cannot reach" in str(info.value)
    assert EventHubsError.__name__  # the DoFn raises EventHubsError; Beam wraps it with the same text
