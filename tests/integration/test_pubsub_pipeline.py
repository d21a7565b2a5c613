"""The Pub/Sub connector over the wire, against Google's emulator (the pubsub_service fixture).

Every test publishes its own events and compares the CLI's aggregates with an independent
computation here; one run is SIGKILLed before acknowledging to prove redelivery without loss.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from io_connectors.after_run import AfterRun
from tests.services import PubSubService

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DIMS = ("region", "key")
BAD = [  # Pub/Sub refuses empty messages, so a blank one stands in for "empty"
    b" ",
    b"{not json",
    b'{"event_id": "x", "region": "eu", "key": "k1", "value": 1}',
    b'{"event_time": 1767225600000, "region": "eu", "key": "k1", "value": "n/a"}',
    b"[1, 2]",
]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for i in range(n):
        events.append(
            {
                # Some ids repeat on purpose, so distinct_ids differs from count.
                "event_id": f"e{seed}-{i if i % 10 else i // 10}",
                "event_time": T0_MS + rng.randrange(0, 300_000),
                "region": rng.choice(["us-east-1", "eu-west-1", "ap-southeast-1"]),
                "key": f"k{rng.randrange(4)}",
                "value": round(rng.uniform(0, 100), 3),
            }
        )
    return events


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expected(events: list[dict[str, Any]], window_ms: int = 60_000) -> dict[tuple, dict[str, Any]]:
    """Independent aggregates: fixed windows, exact quantiles (inclusive rank), distinct ids."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        start = e["event_time"] // window_ms * window_ms
        groups[(_iso(start), _iso(start + window_ms), e["region"], e["key"])].append(e)
    out = {}
    for key, members in groups.items():
        values = sorted(m["value"] for m in members)

        def q(rank: float, values: list[float] = values) -> float:
            return values[max(0, math.ceil(rank * len(values)) - 1)]

        out[key] = {
            "count": len(values),
            "sum": sum(values),
            "min": values[0],
            "max": values[-1],
            "mean": sum(values) / len(values),
            "p50": q(0.5),
            "p95": q(0.95),
            "p99": q(0.99),
            "distinct_ids": len({m["event_id"] for m in members}),
        }
    return out


def _read_output(output: Path) -> dict[tuple, dict[str, Any]]:
    got: dict[tuple, dict[str, Any]] = {}
    for path in sorted(output.rglob("*.jsonl")):
        if "dead_letter" in path.parts or path.name.startswith(".tmp"):
            continue
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            key = (rec["window_start"], rec["window_end"], rec["region"], rec["key"])
            assert key not in got, f"aggregate {key} written twice"
            got[key] = rec
    return got


def _dead_letters(output: Path) -> list[dict[str, Any]]:
    files = [p for p in output.with_name(output.name + "_dead_letter").rglob("*") if p.is_file()]
    return [json.loads(line) for p in files for line in p.read_text().splitlines()]


def _assert_aggregates(output: Path, events: list[dict[str, Any]]) -> None:
    got, want = _read_output(output), _expected(events)
    assert set(got) == set(want)
    for key, expected in want.items():
        rec = got[key]
        for metric in ("count", "min", "max", "p50", "p95", "p99", "distinct_ids"):
            assert rec[metric] == expected[metric], (key, metric)
        assert rec["sum"] == pytest.approx(expected["sum"], rel=1e-12), key
        assert rec["mean"] == pytest.approx(expected["mean"], rel=1e-12), key
        assert (rec["pane"], rec["pane_index"]) == ("ON_TIME", 0)
    assert sum(r["count"] for r in got.values()) == len(events)


def _setup(service: PubSubService, ack_deadline: int = 10) -> tuple[Any, Any, str, str]:
    publisher, subscriber = service.publisher(), service.subscriber()
    topic = publisher.topic_path(service.project_id, _name("events"))
    sub = subscriber.subscription_path(service.project_id, _name("sub"))
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=ack_deadline)
    return publisher, subscriber, topic, sub


def _publish(publisher: Any, topic: str, payloads: list[bytes]) -> None:
    futures = [publisher.publish(topic, data) for data in payloads]
    for future in futures:
        future.result(timeout=30)


def _cli(service: PubSubService, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pipelines.run", *args]
    env = {**os.environ, **service.env()}
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _drained(subscriber: Any, sub: str) -> bool:
    response = subscriber.pull(subscription=sub, max_messages=100, timeout=10)
    return not response.received_messages


@pytest.mark.parametrize("mode", [[], ["--streaming"]], ids=["batch", "streaming"])
def test_cli_bounded_read_gives_exactly_the_published_aggregates(
    pubsub_service: PubSubService, tmp_path: Path, mode: list[str]
) -> None:
    """A bounded CLI read (batch and --streaming) gives exactly the aggregates of the published
    events, dead-letters every bad message by message id, and leaves the subscription drained."""
    publisher, subscriber, topic, sub = _setup(pubsub_service)
    events = _events(400, seed=1)
    _publish(publisher, topic, [json.dumps(e).encode() for e in events] + BAD)

    result = _cli(
        pubsub_service,
        "--source", f"pubsub://{sub}",
        "--pubsub_stop_when_idle", "3",
        "--pubsub_max_messages", "100",
        "--output", str(tmp_path / "out"),
        *mode,
    )  # fmt: skip

    _assert_aggregates(tmp_path / "out", events)
    dead = _dead_letters(tmp_path / "out")
    assert sorted(d.get("payload", "") for d in dead) == sorted(b.decode() for b in BAD)
    assert all(re.fullmatch(rf"{re.escape(sub)}@\d+", d["source"]) for d in dead)  # message ids
    assert re.search(r"records read\s+405\b", result.stdout)
    assert _drained(subscriber, sub)  # everything was acknowledged


# The CLI with INFO logging on stderr: the reader says what it pulled and finalized.
LOGGED_CLI = (
    "import logging, runpy; logging.basicConfig(level=logging.INFO); "
    "runpy.run_module('pipelines.run', run_name='__main__')"
)


def _kill_once_logged(service: PubSubService, argv: list[str], pattern: str, total: int, forbidden: str) -> int:
    """Runs the CLI until its log lines matching `pattern` (one number each) add up to `total`,
    then SIGKILLs it; fails if a line contains `forbidden`. Returns the sum reached."""
    job = subprocess.Popen(
        [sys.executable, "-c", LOGGED_CLI, *argv],
        cwd=REPO, env={**os.environ, **service.env()}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen, deadline = 0, time.monotonic() + 120
    try:
        assert job.stderr is not None
        for line in job.stderr:
            match = re.search(pattern, line)
            seen += int(match.group(1)) if match else 0
            assert forbidden not in line, f"the run logged {forbidden!r} before it was killed"
            if seen >= total or time.monotonic() > deadline:
                break
    finally:
        job.kill()  # SIGKILL: no finalization, no cleanup, no exit hooks
        job.wait(timeout=30)
    assert job.returncode == -9
    return seen


def test_killed_run_is_redelivered_and_counted_once_by_the_next(pubsub_service: PubSubService, tmp_path: Path) -> None:
    """A run SIGKILLed while holding every message unacknowledged loses nothing: after one ack
    deadline Pub/Sub delivers them again and the next run counts each exactly once."""
    publisher, subscriber, topic, sub = _setup(pubsub_service, ack_deadline=10)
    events = _events(300, seed=2)
    _publish(publisher, topic, [json.dumps(e).encode() for e in events])

    # Run 1 reads everything but never reaches a checkpoint (bundles and idle stop far away),
    # so nothing is acknowledged; its INFO log says how many messages it holds.
    pulled = _kill_once_logged(
        pubsub_service,
        ["--source", f"pubsub://{sub}", "--pubsub_stop_when_idle", "600", "--pubsub_bundle_seconds", "600",
         "--pubsub_ack_deadline", "10", "--pubsub_max_messages", "50", "--output", str(tmp_path / "run1")],
        r"Pub/Sub: pulled (\d+) messages", len(events), forbidden="acknowledged",
    )  # fmt: skip
    assert pulled == len(events)
    assert not list((tmp_path / "run1").rglob("*.jsonl"))  # it died before writing anything

    # Run 2: the lease of run 1 lapses within one ack deadline, Pub/Sub redelivers, and
    # every event is counted exactly once.
    _cli(
        pubsub_service,
        "--source", f"pubsub://{sub}",
        "--pubsub_stop_when_idle", "15",
        "--pubsub_ack_deadline", "10",
        "--output", str(tmp_path / "run2"),
    )  # fmt: skip
    _assert_aggregates(tmp_path / "run2", events)
    assert _drained(subscriber, sub)


def test_killed_after_bundles_were_finalized_loses_nothing(pubsub_service: PubSubService, tmp_path: Path) -> None:
    """The local runner finalizes every read bundle (1 s checkpoints here) long before it writes a
    window. A run SIGKILLed after all its bundles were finalized, and before any file was
    written, has acknowledged nothing: the next run gets every message again and counts each
    once, and acknowledges them only after it succeeded (the subscription is then empty)."""
    publisher, subscriber, topic, sub = _setup(pubsub_service, ack_deadline=10)
    events = _events(300, seed=3)
    _publish(publisher, topic, [json.dumps(e).encode() for e in events])

    # SIGKILL once every bundle was finalized: where acks on finalization would lose data.
    finalized = _kill_once_logged(
        pubsub_service,
        ["--source", f"pubsub://{sub}", "--pubsub_stop_when_idle", "600", "--pubsub_bundle_seconds", "1",
         "--pubsub_ack_deadline", "10", "--pubsub_max_messages", "50", "--output", str(tmp_path / "run1")],
        r"Pub/Sub: bundle of (\d+) messages finalized", len(events), forbidden="acknowledged on bundle finalization",
    )  # fmt: skip
    assert finalized == len(events)
    assert not list((tmp_path / "run1").rglob("*.jsonl"))  # no window was written

    result = _cli(
        pubsub_service,
        "--source", f"pubsub://{sub}",
        "--pubsub_stop_when_idle", "15",
        "--pubsub_ack_deadline", "10",
        "--pubsub_bundle_seconds", "1",
        "--output", str(tmp_path / "run2"),
    )  # fmt: skip
    _assert_aggregates(tmp_path / "run2", events)
    assert re.search(r"records read\s+300\b", result.stdout)
    assert _drained(subscriber, sub)  # acknowledged at the end of the successful run


def test_max_records_stops_after_exactly_that_many(pubsub_service: PubSubService, tmp_path: Path) -> None:
    """--max_records stops the read after exactly that many records; the rest stay in the
    subscription for the next run."""
    publisher, subscriber, topic, sub = _setup(pubsub_service)
    events = _events(150, seed=3)
    _publish(publisher, topic, [json.dumps(e).encode() for e in events])
    result = _cli(
        pubsub_service,
        "--source", f"pubsub://{sub}",
        "--max_records", "100",
        "--max_read_time", "120",
        "--pubsub_max_messages", "30",
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert re.search(r"records read\s+100\b", result.stdout)
    assert sum(r["count"] for r in _read_output(tmp_path / "out").values()) == 100
    # The other 50 stay on the subscription, unread and unacknowledged.
    left = set()
    for _ in range(20):
        response = subscriber.pull(subscription=sub, max_messages=100, timeout=10)
        left.update(m.message.data for m in response.received_messages)
        subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in response.received_messages] or ["x"])
        if len(left) >= 50 or not response.received_messages:
            break
    assert len(left) == 50


def test_topic_source_reads_through_a_job_subscription_deleted_at_the_end(
    pubsub_service: PubSubService, tmp_path: Path
) -> None:
    """A topic source reads through a subscription of the job's own, which is deleted when the
    job ends."""
    publisher = pubsub_service.publisher()
    topic = publisher.topic_path(pubsub_service.project_id, _name("events"))
    publisher.create_topic(name=topic)
    events = _events(120, seed=4)
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.run", "--source", f"pubsub://{topic}", "--pubsub_stop_when_idle", "6",
         "--output", str(tmp_path / "out")],
        cwd=REPO, env={**os.environ, **pubsub_service.env()}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        subscriptions: list[str] = []
        for _ in range(600):  # the job creates its subscription when it builds the pipeline
            subscriptions = list(publisher.list_topic_subscriptions(topic=topic))
            if subscriptions or job.poll() is not None:
                break
            time.sleep(0.1)
        assert len(subscriptions) == 1 and "-job-" in subscriptions[0]
        _publish(publisher, topic, [json.dumps(e).encode() for e in events])
        stdout, stderr = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, stderr[-4000:]
    _assert_aggregates(tmp_path / "out", events)
    assert list(publisher.list_topic_subscriptions(topic=topic)) == []  # deleted when the job ended


def test_dead_letters_are_published_to_a_topic_as_well_as_files(
    pubsub_service: PubSubService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --pubsub_dead_letter_topic every bad record is published to the topic, with its error
    and source attributes, as well as written to the dead-letter files."""
    import apache_beam as beam

    from pipelines.analytics import add_analytics, build_pipeline  # noqa: F401 - the hook's caller
    from pipelines.config import build_config
    from pipelines.dead_letter_topic import publish_dead_letters
    from pipelines.run import parse_options

    for name, value in pubsub_service.env().items():
        monkeypatch.setenv(name, value)
    publisher, subscriber, topic, sub = _setup(pubsub_service)
    dlq_topic = publisher.topic_path(pubsub_service.project_id, _name("dlq"))
    dlq_sub = subscriber.subscription_path(pubsub_service.project_id, _name("dlq-sub"))
    publisher.create_topic(name=dlq_topic)
    subscriber.create_subscription(name=dlq_sub, topic=dlq_topic)
    events = _events(50, seed=5)
    _publish(publisher, topic, [json.dumps(e).encode() for e in events] + BAD)

    options = parse_options(
        ["--source", f"pubsub://{sub}", "--pubsub_stop_when_idle", "3", "--output", str(tmp_path / "out"),
         "--pubsub_dead_letter_topic", dlq_topic]
    )  # fmt: skip
    config = build_config(options)
    from pipelines.adapters import source_from_uri

    # What pipelines/analytics.build_pipeline does, plus the three-line hook.
    after_run = AfterRun()
    with beam.Pipeline(options=options) as pipeline:
        batches = pipeline | "Read" >> source_from_uri(config.source, pipeline.options, config.input_format, after_run)
        outputs = add_analytics(batches, config)
        publish_dead_letters(outputs["dead_letters"], pipeline.options)
    after_run.commit()  # what the CLI does once the run has succeeded: acknowledge
    assert _drained(subscriber, sub)

    _assert_aggregates(tmp_path / "out", events)
    files = _dead_letters(tmp_path / "out")
    published: list[dict[str, Any]] = []
    for _ in range(10):
        response = subscriber.pull(subscription=dlq_sub, max_messages=100, timeout=10)
        for m in response.received_messages:
            record = json.loads(m.message.data)
            assert m.message.attributes["error"] == record["error"]
            assert m.message.attributes["source"] == record["source"]
            published.append(record)
        if response.received_messages:
            subscriber.acknowledge(subscription=dlq_sub, ack_ids=[m.ack_id for m in response.received_messages])
        if len(published) >= len(BAD):
            break
    key = lambda d: (d["source"], d["error"])  # noqa: E731
    assert sorted(published, key=key) == sorted(files, key=key)
    assert len(published) == len(BAD)


def test_writer_batches_and_keeps_order_per_ordering_key(pubsub_service: PubSubService, monkeypatch) -> None:
    """WriteToPubSub publishes every element, in batches, in order within each ordering key."""
    import apache_beam as beam

    from io_connectors.pubsub_writer import WriteToPubSub

    for name, value in pubsub_service.env().items():
        monkeypatch.setenv(name, value)
    publisher, subscriber = pubsub_service.publisher(), pubsub_service.subscriber()
    topic = publisher.topic_path(pubsub_service.project_id, _name("out"))
    sub = subscriber.subscription_path(pubsub_service.project_id, _name("out-sub"))
    publisher.create_topic(name=topic)
    subscriber.create_subscription(
        request={"name": sub, "topic": topic, "enable_message_ordering": True, "ack_deadline_seconds": 60}
    )
    elements = [(json.dumps({"k": f"k{i % 3}", "seq": i}).encode(), {"k": f"k{i % 3}"}) for i in range(60)]
    with beam.Pipeline() as p:
        _ = p | beam.Create(elements) | WriteToPubSub(topic, ordering_key=lambda e: e[1]["k"], max_messages=10)

    received: list[Any] = []
    for _ in range(20):
        response = subscriber.pull(subscription=sub, max_messages=100, timeout=10)
        received += [m.message for m in response.received_messages]
        if response.received_messages:
            subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in response.received_messages])
        if len(received) >= 60:
            break
    assert sorted(json.loads(m.data)["seq"] for m in received) == list(range(60))
    for key in ("k0", "k1", "k2"):
        mine = [m for m in received if m.ordering_key == key]
        assert all(m.attributes["k"] == key for m in mine)
        seqs = [json.loads(m.data)["seq"] for m in mine]
        assert seqs == sorted(seqs) and len(seqs) == 20  # Beam's Create keeps this bundle's order
