"""The lag vocabulary over the wire: on Kinesis, Event Hubs (Kafka protocol) and Pub/Sub, a
pre-loaded backlog is read in a bounded pipeline; source_lag_ms and source_backlog_records (where
the service tells it) start high and reach about zero by the end, in the live view while the run
reads and in the Beam metrics of its result, and the tracker's remaining work shrinks. One case
runs the CLI with --metrics_port and scrapes the endpoint while it reads.

Kinesis runs on moto: kinesalite answers MillisBehindLatest 0 on every open shard, so a backlog
never shows there; moto answers the time between the page's last record and the shard's newest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import eventhubs, kinesis, pubsub
from io_connectors.eventhubs import ReadFromEventHubs, ReadSettings
from io_connectors.eventhubs_client import EventHubsTarget
from io_connectors.kinesis import ReadFromKinesis
from io_connectors.metrics import (
    LIVE,
    NAMESPACE,
    SOURCE_BACKLOG_RECORDS,
    SOURCE_LAG_MS,
    SOURCE_RECORDS_READ,
    name_of,
)
from io_connectors.pubsub import ReadFromPubSub
from io_connectors.read_core import listen_to_claims
from tests.services import KafkaService, MotoService, PubSubService
from tests.services._base import free_port
from tests.services.kafka import create_hub, produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
ABOUT_ZERO_MS = 1_000


def _payloads(n: int, tag: str) -> list[bytes]:
    return [f'{{"event_id": "{tag}-{i}", "event_time": {1_767_225_600_000 + i}, "region": "eu", "key": "k", '
            f'"value": {i}}}'.encode() for i in range(n)]


def _read_sampling(read: beam.PTransform, reader: type, split: str,
                   monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[tuple]]:
    """Runs `read` on the in-process DirectRunner. After every claim, samples the live lag and
    backlog of `split` and the remaining work of the newest tracker; returns the Beam metrics of the
    result (name -> committed value) and the samples."""
    trackers: list[Any] = []
    create_tracker = reader.create_tracker

    def recording(self: Any, restriction: Any) -> Any:
        trackers.append(create_tracker(self, restriction))
        return trackers[-1]

    monkeypatch.setattr(reader, "create_tracker", recording)
    samples: list[tuple] = []

    def sample(_count: int) -> None:
        samples.append((LIVE.gauge(SOURCE_LAG_MS).get(split), LIVE.gauge(SOURCE_BACKLOG_RECORDS).get(split),
                        trackers[-1].current_progress().remaining_work))

    LIVE.reset()
    stop_listening = listen_to_claims(sample)
    try:
        pipeline = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
        _ = pipeline | read | beam.Map(len)
        result = pipeline.run()
        result.wait_until_finish()
    finally:
        stop_listening()
    metrics: dict[str, Any] = {}
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    for item in query["counters"]:
        metrics[item.key.metric.name] = metrics.get(item.key.metric.name, 0) + (item.committed or item.attempted)
    for item in query["gauges"]:
        metrics[item.key.metric.name] = (item.committed or item.attempted).value
    samples.append((None, None, trackers[-1].current_progress().remaining_work))  # after the read
    return metrics, samples


def _lags(samples: list[tuple]) -> list[float]:
    return [lag for lag, _, _ in samples if lag is not None]


def test_kinesis_lag_falls_from_the_backlog_to_zero(moto_service: MotoService,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in moto_service.env().items():
        monkeypatch.setenv(key, value)
    client = moto_service.client("kinesis")
    stream = f"lag-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=stream, ShardCount=1)
    client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 200})
    for group in range(3):  # three puts 1.5 s apart: a backlog 3 s deep
        if group:
            time.sleep(1.5)
        client.put_records(StreamName=stream, Records=[{"Data": p, "PartitionKey": "k"}
                                                       for p in _payloads(100, f"g{group}")])
    shard_id = client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    read = ReadFromKinesis(stream, moto_service.region, endpoint_url=moto_service.endpoint_url,
                           start_position="TRIM_HORIZON", read_to_latest=True, records_per_call=50, spare_readers=0)
    split = f"{stream}/{shard_id}"
    metrics, samples = _read_sampling(read, kinesis._ReadShard, split, monkeypatch)

    lags = _lags(samples)
    assert lags[0] >= 2_500, samples  # the first page: the whole backlog ahead of it
    assert lags[-1] <= ABOUT_ZERO_MS and metrics[name_of(SOURCE_LAG_MS, split)] <= ABOUT_ZERO_MS, samples
    remaining = [work for _, _, work in samples]
    assert remaining[0] >= 3.5 and remaining[-1] == 0, samples  # seconds behind (+1 for the open shard)
    assert all(a >= b for a, b in zip(remaining, remaining[1:], strict=False)), samples
    assert metrics[SOURCE_RECORDS_READ] == 300
    assert name_of(SOURCE_BACKLOG_RECORDS, split) not in metrics  # Kinesis does not tell


def test_eventhubs_backlog_and_lag_fall_to_zero(kafka_service: KafkaService,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    hub = f"lag-{uuid.uuid4().hex[:8]}"
    create_hub(kafka_service.bootstrap, hub, 1)
    for group in range(3):  # enqueued 1 s apart
        if group:
            time.sleep(1.0)
        produce(kafka_service.bootstrap, hub, _payloads(300, f"g{group}"))
    target = EventHubsTarget("local", hub, bootstrap=kafka_service.bootstrap, security_protocol="plaintext",
                             connect_timeout_s=10)
    read = ReadFromEventHubs(target, ReadSettings(read_to_latest=True, batch_size=100, max_partitions=1))
    split = f"{hub}/0"
    metrics, samples = _read_sampling(read, eventhubs._ReadPartition, split, monkeypatch)

    lags = _lags(samples)
    backlogs = [backlog for _, backlog, _ in samples if backlog is not None]
    assert lags[0] >= 1_500 and backlogs[0] >= 600, samples
    assert all(a >= b for a, b in zip(backlogs, backlogs[1:], strict=False)), samples
    assert metrics[name_of(SOURCE_LAG_MS, split)] == 0 and metrics[name_of(SOURCE_BACKLOG_RECORDS, split)] == 0
    remaining = [work for _, _, work in samples]
    assert remaining[1] >= 600 and remaining[-1] == 0, samples  # end offset minus position
    assert metrics[SOURCE_RECORDS_READ] == 900


def _pubsub_backlog(service: PubSubService, n: int) -> str:
    publisher, subscriber = service.publisher(), service.subscriber()
    topic = publisher.topic_path(service.project_id, f"lag-{uuid.uuid4().hex[:8]}")
    sub = subscriber.subscription_path(service.project_id, f"lag-{uuid.uuid4().hex[:8]}")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=30)
    for future in [publisher.publish(topic, payload) for payload in _payloads(n, "p")]:
        future.result(timeout=30)
    time.sleep(3.0)  # the backlog ages: every message is at least 3 s old when read
    return sub


def test_pubsub_lag_is_the_oldest_unacknowledged_age_and_falls_to_zero(pubsub_service: PubSubService,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in pubsub_service.env().items():
        monkeypatch.setenv(key, value)
    sub = _pubsub_backlog(pubsub_service, 300)
    read = ReadFromPubSub(subscription=sub, stop_when_idle=2, bundle_seconds=1, max_messages=50, native=True)
    metrics, samples = _read_sampling(read, pubsub._PullFn, sub, monkeypatch)

    lags = _lags(samples)
    assert lags[1] >= 3_000, samples  # the first pull: all of it still unacknowledged
    # This runner finalizes (acknowledges) the read's bundles only once the read stage is done, so
    # the last value a read call reported (the one Beam's result keeps) is still an age; the
    # acknowledgements then bring the live value (progress line, --metrics_port) to zero.
    assert metrics[name_of(SOURCE_LAG_MS, sub)] >= 3_000
    assert LIVE.gauge(SOURCE_LAG_MS)[sub] == 0
    assert metrics[SOURCE_RECORDS_READ] == 300
    assert name_of(SOURCE_BACKLOG_RECORDS, sub) not in metrics  # Pub/Sub does not tell
    assert all(work == 1.0 for _, _, work in samples[:-1])  # no budget, no backlog from the API: unknown


def _scrape(url: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            text = response.read().decode()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        match = re.match(r'^(analytics_\w+)(?:\{split="[^"]*"\})? ([0-9.e+-]+)$', line)
        if match:
            found[match.group(1)] = max(found.get(match.group(1), 0.0), float(match.group(2)))
    return found


def test_cli_serves_the_lag_on_metrics_port_while_it_reads(pubsub_service: PubSubService, tmp_path: Path) -> None:
    sub = _pubsub_backlog(pubsub_service, 300)
    port = free_port()
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.run", "--source", f"pubsub://{sub}", "--pubsub_stop_when_idle", "3",
         "--pubsub_bundle_seconds", "1", "--pubsub_max_messages", "50", "--metrics_port", str(port),
         "--progress", "off", "--output", str(tmp_path / "out")],
        cwd=REPO, env={**os.environ, **pubsub_service.env()}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    scrapes = []
    while job.poll() is None:
        scrape = _scrape(f"http://127.0.0.1:{port}/metrics")
        if scrape:
            scrapes.append(scrape)
        time.sleep(0.2)
    stdout, stderr = job.communicate()
    assert job.returncode == 0, stderr[-3000:]
    lags = [s["analytics_source_lag_ms"] for s in scrapes if "analytics_source_lag_ms" in s]
    assert lags and max(lags) >= 3_000, scrapes
    assert lags[-1] <= ABOUT_ZERO_MS, scrapes  # acknowledged, then quiet until the read ends
    assert max(s.get("analytics_source_records_read_total", 0) for s in scrapes) == 300
    assert re.search(r"records read\s+300\b", stdout + stderr), stderr[-3000:]  # the final summary
