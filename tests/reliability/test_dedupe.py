"""Duplicate delivery: with --dedupe_by event_id every event counts once per window, without it
every delivery counts; over files (bounded path) and over a Kinesis stream with re-put records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.reliability.helpers import (
    REPO,
    assert_same_aggregates,
    dead_letters,
    encode,
    expected_aggregates,
    final_aggregates,
    good_events,
    kinesis_stream,
    put_kinesis,
    read_panes,
    run_cli,
    write_lines,
)
from transforms.dedupe import stable_shard


def test_stable_shard_is_the_same_in_every_process():
    """The shard of an id does not depend on the process's hash salt, so workers agree on it."""
    code = "from transforms.dedupe import stable_shard; print([stable_shard(f'e{i}', 4) for i in range(50)])"
    shards = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed}, cwd=REPO,
                       capture_output=True, text=True, check=True).stdout
        for seed in ("1", "2", "3")
    }
    assert len(shards) == 1
    assert shards.pop().strip() == str([stable_shard(f"e{i}", 4) for i in range(50)])
    assert {stable_shard(f"e{i}", 4) for i in range(100)} == {0, 1, 2, 3}


@pytest.mark.parametrize("dedupe", [True, False])
def test_duplicate_lines_in_files(tmp_path, dedupe):
    """Every event twice (second copy in a later file, shuffled): counted once with
    --dedupe_by event_id, twice without; unreadable records still reach the dead letters."""
    events = good_events(3_000, seed=5)
    records = encode(events)
    bad = [b"{not json", b'{"event_id": "x", "value": 1}']  # no id/time readable: passes dedupe untouched
    write_lines(tmp_path / "a.jsonl", records[:2_000] + bad)
    write_lines(tmp_path / "b.jsonl", records[2_000:] + list(reversed(records)) + bad)
    out = tmp_path / "out"
    argv = ["--source", f"file://{tmp_path}/*.jsonl", "--output", str(out)]
    run_cli({}, *argv, *(["--dedupe_by", "event_id"] if dedupe else []))
    actual = final_aggregates(read_panes(out))
    assert_same_aggregates(actual, expected_aggregates(events if dedupe else events + events))
    assert len(dead_letters(out)) == 4  # both copies of each bad record: each delivery is reported


@pytest.mark.integration
@pytest.mark.parametrize("dedupe", [True, False])
def test_kinesis_re_put_counted_once(kinesis_service, tmp_path, dedupe):
    """A producer re-puts the same 1,500 events (as after a timeout): the streaming run counts
    each once per window with --dedupe_by event_id and twice without."""
    client = kinesis_service.client()
    stream = kinesis_stream(client, 2, f"dup-{uuid.uuid4().hex[:8]}")
    events = good_events(1_500, seed=9)
    put_kinesis(client, stream, encode(events))
    put_kinesis(client, stream, encode(events[::-1]))
    out = tmp_path / "out"
    run_cli(
        kinesis_service.env(), "--source", f"kinesis://{stream}?region=us-east-1",
        "--kinesis_start_position", "TRIM_HORIZON", "--kinesis_read_to_latest", "--kinesis_poll_interval", "0.2",
        "--streaming", "--output", str(out), *(["--dedupe_by", "event_id"] if dedupe else []),
    )
    actual = final_aggregates(read_panes(out))
    assert_same_aggregates(actual, expected_aggregates(events if dedupe else events + events))


@pytest.mark.integration
@pytest.mark.parametrize("dedupe", [True, False])
def test_pubsub_redelivery_counted_once(pubsub_service, tmp_path, dedupe):
    """Every event published twice (what a redelivery after a lost ack looks like to the
    reader: the same payload again): counted once with --dedupe_by event_id, twice without."""
    publisher, subscriber = pubsub_service.publisher(), pubsub_service.subscriber()
    topic = publisher.topic_path(pubsub_service.project_id, f"dup-{uuid.uuid4().hex[:8]}")
    sub = subscriber.subscription_path(pubsub_service.project_id, f"dup-{uuid.uuid4().hex[:8]}")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=10)
    events = good_events(600, seed=17)
    futures = [publisher.publish(topic, payload) for payload in encode(events) + encode(events[::-1])]
    for future in futures:
        future.result(timeout=30)
    out = tmp_path / "out"
    run_cli(pubsub_service.env(), "--source", f"pubsub://{sub}", "--pubsub_stop_when_idle", "3", "--streaming",
            "--output", str(out), *(["--dedupe_by", "event_id"] if dedupe else []))
    actual = final_aggregates(read_panes(out))
    assert_same_aggregates(actual, expected_aggregates(events if dedupe else events + events))


def test_overflow_beyond_max_ids_passes_records_through():
    """Past --dedupe_max_ids a window's newer ids are not remembered: their duplicates pass
    (counted twice) and nothing is ever dropped wrongly; remembered ids are still deduplicated."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from io_connectors.records import RawBatch
    from transforms.dedupe import Dedupe
    from transforms.windowing import parse_window

    records = encode(good_events(40, seed=3, span_ms=1_000))  # one window
    with beam.Pipeline() as pipeline:
        ids = (
            pipeline
            | beam.Create([RawBatch("a", records), RawBatch("b", records)])
            | Dedupe("event_id", "event_time", parse_window("fixed:60"), max_ids=3, shards=1)
            | beam.FlatMap(lambda batch: [json.loads(r)["event_id"] for r in batch.records])
            | "PerId" >> beam.combiners.Count.PerElement()
            | beam.Map(lambda kv: kv[1])
            | "PerTimesSeen" >> beam.combiners.Count.PerElement()
        )
        # 3 ids remembered: seen once; the 37 others pass both times.
        assert_that(ids, equal_to([(1, 3), (2, 37)]))
