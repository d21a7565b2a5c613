"""Shard planning, option parsing and the writer's batching, with fake clients."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.kinesis import (
    DiscoveryState,
    KinesisError,
    KinesisPutter,
    KinesisReadConfig,
    partition_key_of,
    plan_shards,
    source_from_uri,
)
from io_connectors.kinesis_core import Backoff, StartPosition
from io_connectors.uri import UriError, parse_source


def shard(shard_id, parent=None, adjacent=None, closed=False):
    record = {"ShardId": shard_id, "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
    if parent:
        record["ParentShardId"] = parent
    if adjacent:
        record["AdjacentParentShardId"] = adjacent
    if closed:
        record["SequenceNumberRange"]["EndingSequenceNumber"] = "9"
    return record


LISTING = [shard("a", closed=True), shard("b", closed=True), shard("c", "a"), shard("d", "a"), shard("e", "b", "c")]


def test_trim_horizon_plans_every_shard_parents_first():
    new, state = plan_shards(LISTING, DiscoveryState(), KinesisReadConfig("s", start_position="TRIM_HORIZON"), 0)
    order = [s.shard_id for s in new]
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    assert order.index("a") < order.index("c") and order.index("c") < order.index("e")
    assert {s.shard_id: s.parents for s in new}["e"] == ("b", "c")
    assert state.emitted == frozenset(order) and state.polls == 1


def test_latest_skips_closed_shards_and_pins_the_start_time():
    new, state = plan_shards(LISTING, DiscoveryState(), KinesisReadConfig("s"), 1234)
    assert {s.shard_id for s in new} == {"c", "d", "e"}
    assert all(s.start == StartPosition("AT_TIMESTAMP", timestamp_ms=1234) for s in new)
    assert {s.shard_id: s.parents for s in new}["e"] == ("c",)  # b was skipped: nothing to wait for
    assert state.skipped == frozenset({"a", "b"})


def test_later_listing_adds_children_from_their_start():
    config = KinesisReadConfig("s", start_position="TRIM_HORIZON")
    _, state = plan_shards([shard("a")], DiscoveryState(), config, 0)
    new, state2 = plan_shards([shard("a", closed=True), shard("f", "a"), shard("g", "a")], state, config, 0)
    assert [(s.shard_id, s.parents, s.start.kind) for s in new] == [("f", ("a",), "TRIM_HORIZON"),
                                                                    ("g", ("a",), "TRIM_HORIZON")]
    again, _ = plan_shards([shard("a", closed=True), shard("f", "a"), shard("g", "a")], state2, config, 0)
    assert again == []


def test_source_from_uri_reads_options_and_env(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    options = PipelineOptions(["--kinesis_start_position", "AT_TIMESTAMP",
                               "--kinesis_start_timestamp", "2026-01-01T00:00:00Z", "--max_records", "5",
                               "--kinesis_watermark", "event_time"])
    read = source_from_uri(parse_source("kinesis://events?region=eu-west-1"), options)
    config = read.config
    assert (config.stream, config.region, config.endpoint_url) == ("events", "eu-west-1", "http://127.0.0.1:9")
    assert config.start_timestamp_ms == 1_767_225_600_000 and config.max_records == 5 and config.bounded
    assert config.watermark == "event_time"


@pytest.mark.parametrize(
    "uri,args,message",
    [
        ("kinesis://?region=us-east-1", [], "names no single stream"),
        ("kinesis://s?region=us-east-1&bogus=1", [], "unknown parameter"),
        ("kinesis://s?region=us-east-1", ["--kinesis_start_position", "AT_TIMESTAMP"],
         "needs --kinesis_start_timestamp"),
    ],
)
def test_bad_kinesis_uris_are_explained(uri, args, message):
    with pytest.raises(UriError, match=message):
        source_from_uri(parse_source(uri), PipelineOptions(args))


def test_partition_key_from_field():
    assert partition_key_of({"key": "k1"}, "key", "x") == "k1"
    assert partition_key_of(b'{"key": 7}', "key", "x") == "7"
    assert partition_key_of(b"not json", "key", "x") == "x"
    assert partition_key_of(b'{"other": 1}', "key", "x") == "x"


class FakeKinesis:
    """PutRecords that fails chosen entries on the first attempt and records each call."""

    def __init__(self, fail_first=()):
        self.calls = []
        self.fail = set(fail_first)

    def put_records(self, StreamName, Records):  # noqa: N803 - boto3's argument names
        self.calls.append([r["Data"] for r in Records])
        results = []
        for record in Records:
            if record["Data"] in self.fail:
                self.fail.discard(record["Data"])
                results.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"})
            else:
                results.append({"SequenceNumber": "1", "ShardId": "shardId-0"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def test_putter_batches_by_count_and_bytes_and_retries_only_failures():
    client = FakeKinesis(fail_first={b"r3", b"r7"})
    putter = KinesisPutter(client, "s", backoff=Backoff(rng=lambda: 0.0), sleep=lambda s: None)
    for i in range(1200):
        putter.add(f"r{i}".encode(), "k")
    putter.flush()
    sizes = [len(c) for c in client.calls]
    assert sizes[0] == 500 and client.calls[1] == [b"r3", b"r7"]  # only the failed entries again
    assert sum(sizes) == 1202 and putter.sent == 1200 and putter.retried == 2
    big = FakeKinesis()
    putter = KinesisPutter(big, "s")
    for _ in range(6):
        putter.add(b"x" * 1_000_000, "k")  # 6 x ~1 MB: 5 MiB cap splits the calls
    putter.flush()
    assert [len(c) for c in big.calls] == [5, 1]
    with pytest.raises(ValueError, match="1 MiB"):
        putter.add(b"x" * (1 << 20), "k")


def test_putter_gives_up_with_a_clear_error():
    client = FakeKinesis(fail_first={b"a"})
    client.fail = type("Always", (), {"__contains__": lambda self, x: True, "discard": lambda self, x: None})()
    putter = KinesisPutter(client, "s", max_attempts=3, backoff=Backoff(rng=lambda: 0.0), sleep=lambda s: None)
    putter.add(b"a", "k")
    with pytest.raises(KinesisError, match="still failing after 3 attempts"):
        putter.flush()
