"""Local streaming through the CLI on Prism, one test per stream source.

Each test runs `python -m pipelines.run --runner PrismRunner --streaming --early_firing 0.5` on a
real emulator, feeds events stamped with the wall clock while the job runs, waits until EARLY
and ON_TIME panes of the fed windows are in the output, then sends SIGINT (Ctrl-C). The job must
stop cleanly: exit code 0, no partial (temporary) file, final panes equal to an independent
computation of the fed events, and the source's acknowledgements or offsets committed for
exactly what was written.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.streaming import (
    REPO,
    WINDOW_S,
    StreamingRun,
    assert_stopped_cleanly,
    common_args,
    feed_while_running,
    prism_args,
    wait_for_panes,
)
from tests.reliability.helpers import final_aggregates, kinesis_stream, put_kinesis, read_panes
from tests.services.kafka import create_hub, produce


@pytest.fixture
def running() -> Iterator[list[StreamingRun]]:
    runs: list[StreamingRun] = []
    yield runs
    for run in runs:
        run.kill()


def test_kinesis_streams_early_and_on_time_panes_and_stops_on_sigint(kinesis_service, tmp_path, running):
    client = kinesis_service.client()
    # One shard: kinesalite can leave one of two concurrent first GetShardIterator calls unanswered.
    stream = kinesis_stream(client, 1, f"live-{uuid.uuid4().hex[:8]}")
    out = tmp_path / "out"
    run = StreamingRun(kinesis_service.env(), [
        *common_args(out), "--source", f"kinesis://{stream}?region={kinesis_service.region}",
        "--kinesis_endpoint_url", kinesis_service.endpoint_url, "--kinesis_start_position", "TRIM_HORIZON",
        "--kinesis_poll_interval", "0.2",
    ])
    running.append(run)
    fed = feed_while_running(run, lambda records: put_kinesis(client, stream, records))
    wait_for_panes(run, out, fed)
    assert_stopped_cleanly(run, out, fed)


def test_eventhubs_streams_panes_and_commits_offsets_of_what_was_written(kafka_service, tmp_path, running):
    from confluent_kafka import Consumer, TopicPartition

    hub = f"live-{uuid.uuid4().hex[:8]}"
    create_hub(kafka_service.bootstrap, hub, 2)
    out = tmp_path / "out"
    run = StreamingRun({}, [
        *common_args(out), "--source", f"eventhubs://local/{hub}?consumer_group=analytics",
        "--kafka_bootstrap", kafka_service.bootstrap, "--eventhubs_security_protocol", "plaintext",
        "--eventhubs_max_partitions", "2", "--eventhubs_commit_offsets",
    ])
    running.append(run)
    fed = feed_while_running(run, lambda records: produce(kafka_service.bootstrap, hub, records,
                                                         partition_of=lambda i: i % 2))
    wait_for_panes(run, out, fed)
    assert_stopped_cleanly(run, out, fed)
    # Offsets are committed once the run has succeeded, for every record it wrote: all of them.
    consumer = Consumer({"bootstrap.servers": kafka_service.bootstrap, "group.id": "analytics"})
    try:
        committed = consumer.committed([TopicPartition(hub, p) for p in (0, 1)], timeout=10)
    finally:
        consumer.close()
    assert sum(tp.offset for tp in committed) == len(fed)


def test_pubsub_streams_panes_and_acknowledges_what_was_written(pubsub_service, tmp_path, running):
    project = pubsub_service.project_id
    topic = f"projects/{project}/topics/live-{uuid.uuid4().hex[:8]}"
    sub = f"projects/{project}/subscriptions/live-{uuid.uuid4().hex[:8]}"
    publisher, subscriber = pubsub_service.publisher(), pubsub_service.subscriber()
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=30)
    out = tmp_path / "out"
    run = StreamingRun(pubsub_service.env(), [
        *common_args(out), "--source", f"pubsub://{sub}", "--pubsub_idle_watermark", "2",
        "--pubsub_bundle_seconds", "1", "--pubsub_max_messages", "200",
    ])
    running.append(run)

    def send(records: list[bytes]) -> None:
        for future in [publisher.publish(topic, record) for record in records]:
            future.result(timeout=30)

    fed = feed_while_running(run, send)
    wait_for_panes(run, out, fed)
    assert_stopped_cleanly(run, out, fed)
    # Everything written was acknowledged: nothing is delivered again.
    response = subscriber.pull(subscription=sub, max_messages=100, timeout=10, return_immediately=True)
    assert list(response.received_messages) == []


def test_a_paced_synthetic_read_gives_early_panes_while_it_runs(tmp_path):
    # No stream service: the paced read checkpoints between batches, so panes fire during the run.
    out = tmp_path / "out"
    events = 3000
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "--runner", "PrismRunner", *prism_args(), "--streaming",
         "--early_firing", "0.5", "--window", f"fixed:{WINDOW_S}", "--source",
         f"synthetic://?events={events}&late=0&rate=750", "--output", str(out), "--progress", "off"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    panes = read_panes(out)
    assert {pane for (_w, _r, _k, pane, _i) in panes} >= {"EARLY", "ON_TIME"}, sorted(panes)[:5]
    dead = sum(len(p.read_bytes().splitlines()) for p in out.parent.joinpath("out_dead_letter").rglob("part-*.jsonl"))
    assert 0 < dead < events * 0.05
    assert sum(record["count"] for record in final_aggregates(panes).values()) == events - dead


def test_fractional_early_firing_is_refused_where_the_runner_counts_whole_seconds(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "--source", "synthetic://?events=10", "--early_firing", "0.5",
         "--output", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--early_firing 0.5: fractions of a second need --runner PrismRunner" in done.stderr


def test_early_firing_trigger_keeps_milliseconds_and_names_its_late_trigger():
    from apache_beam.runners.pipeline_context import PipelineContext

    from transforms.windowing import build_trigger

    proto = build_trigger(0.25, 0).to_runner_api(PipelineContext()).after_end_of_window
    assert proto.early_firings.after_processing_time.timestamp_transforms[0].delay.delay_millis == 250
    # Without an explicit late trigger Prism falls back to one that fires after the window's end.
    assert proto.late_firings.element_count.element_count == 1
