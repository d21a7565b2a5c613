"""Shard planning, option mapping, the reader's watermark and resume wiring, and the producer's
batching, with fake clients."""

from __future__ import annotations

from datetime import UTC, datetime

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from io_connectors import kinesis, positions
from io_connectors.after_run import AfterRun
from io_connectors.kinesis import KinesisError, ReadFromKinesis
from io_connectors.kinesis_core import STOP, Backoff, KinesisReadConfig, KinesisShard, StartPosition
from io_connectors.kinesis_discovery import DiscoveryState, plan_shards
from io_connectors.kinesis_producer import KinesisPutter, partition_key_of
from io_connectors.metrics import (
    BYTES_READ,
    LIVE,
    SOURCE_BACKLOG_RECORDS,
    SOURCE_LAG_MS,
    SOURCE_RECORDS_READ,
    WATERMARK_LAG_MS,
)
from io_connectors.read_core import listen_to_claims
from io_connectors.uri import UriError, parse_source
from pipelines.adapters.kinesis import source_from_uri


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
    new, state = plan_shards(LISTING, DiscoveryState(), KinesisReadConfig(stream="s", start_position="TRIM_HORIZON"), 0)
    order = [s.shard_id for s in new]
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    assert order.index("a") < order.index("c") and order.index("c") < order.index("e")
    assert {s.shard_id: s.parents for s in new}["e"] == ("b", "c")
    assert state.emitted == frozenset(order) and state.polls == 1


def test_latest_skips_closed_shards_and_pins_the_start_time():
    new, state = plan_shards(LISTING, DiscoveryState(), KinesisReadConfig(stream="s"), 1234)
    assert {s.shard_id for s in new} == {"c", "d", "e"}
    assert all(s.start == StartPosition("AT_TIMESTAMP", timestamp_ms=1234) for s in new)
    assert {s.shard_id: s.parents for s in new}["e"] == ("c",)  # b was skipped: nothing to wait for
    assert state.skipped == frozenset({"a", "b"})


def test_later_listing_adds_children_from_their_start():
    config = KinesisReadConfig(stream="s", start_position="TRIM_HORIZON")
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
    read = source_from_uri(parse_source("kinesis://events?region=eu-west-1"), options, AfterRun())
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
        source_from_uri(parse_source(uri), PipelineOptions(args), AfterRun())


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


T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _record(sequence: int, arrival_ms: int) -> dict:
    return {"SequenceNumber": str(sequence), "Data": f"r{sequence}".encode(), "PartitionKey": "k",
            "ApproximateArrivalTimestamp": datetime.fromtimestamp(arrival_ms / 1000, UTC)}


class FakeShard:
    """GetShardIterator/GetRecords of one open shard, served page by page; then empty pages."""

    def __init__(self, pages: list[list[dict]]) -> None:
        self.pages = pages
        self.opened: list[dict] = []

    def get_shard_iterator(self, StreamName, ShardId, **position):  # noqa: N803 - boto3's argument names
        self.opened.append(position)
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator, Limit):  # noqa: N803
        index = int(ShardIterator)
        page = self.pages[index] if index < len(self.pages) else []
        return {"Records": page, "NextShardIterator": str(min(index + 1, len(self.pages))), "MillisBehindLatest": 0}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _read_once(dofn, shard, restriction, state=None):
    """One process() call as a runner makes it: (timestamped outputs, residual, estimator)."""
    tracker = ThreadsafeRestrictionTracker(dofn.create_tracker(restriction))
    estimator = dofn.create_watermark_estimator(state or dofn.initial_estimator_state(shard, restriction))
    outputs = list(dofn.process(shard, RestrictionTrackerView(tracker), estimator))
    tracker.check_done()
    status = tracker.deferred_status()
    return outputs, (status[0] if status else None), estimator


@pytest.fixture
def fake_shard(monkeypatch):
    def install(pages):
        client = FakeShard(pages)
        monkeypatch.setattr(kinesis, "make_client", lambda *args, **kwargs: client)
        monkeypatch.setattr(kinesis, "MIN_CALL_INTERVAL_S", 0.0)
        return client
    return install


def test_resume_store_needs_the_runs_after_run(tmp_path):
    store = str(tmp_path / "_positions" / "s.json")
    with pytest.raises(ValueError, match="position_store needs after_run"):
        ReadFromKinesis("s", "us-east-1", validate=False, read_to_latest=True, position_store=store)
    after_run = AfterRun()
    beam.Pipeline() | ReadFromKinesis("s", "us-east-1", validate=False, read_to_latest=True, position_store=store,
                                      after_run=after_run)
    after_run.record(store, "shardId-0", "5")  # tracked when the graph was built: no KeyError
    assert after_run.positions(store) == {"shardId-0": "5"}


def test_reader_records_claimed_positions_for_the_run_to_commit(tmp_path, fake_shard):
    client = fake_shard([[_record(1, T0 + 1_000), _record(2, T0 + 500)], [_record(3, T0 + 2_000)]])
    store = str(tmp_path / "_positions" / "s.json")
    after_run = AfterRun()
    read = ReadFromKinesis("s", "us-east-1", validate=False, read_to_latest=True, start_position="TRIM_HORIZON",
                           position_store=store, after_run=after_run)
    after_run.track(store, "kinesis://s")
    dofn = kinesis._ReadShard(read.config, after_run)
    dofn.setup()
    shard = KinesisShard("s", "shardId-0")
    outputs, residual, estimator = _read_once(dofn, shard, dofn.initial_restriction(shard))
    assert residual is None  # read to latest: the empty third page ends the read
    assert [[bytes(r) for r in out.value.records] for out in outputs] == [[b"r1", b"r2"], [b"r3"]]
    # Each page is stamped with its earliest arrival, never before the watermark it found.
    assert [out.timestamp for out in outputs] == [Timestamp(micros=(T0 + 500) * 1000),
                                                  Timestamp(micros=(T0 + 2_000) * 1000)]
    assert estimator.watermark_ms() == T0 + 2_000
    assert positions.load_positions(store) == {}  # nothing is stored before the run succeeded
    after_run.commit()
    assert positions.load_positions(store) == {"shardId-0": "3"}
    resumed = kinesis._ReadShard(read.config, after_run).initial_restriction(shard)
    assert resumed.start == StartPosition("AFTER_SEQUENCE_NUMBER", "3")
    assert client.opened == [{"ShardIteratorType": "TRIM_HORIZON"}]


def test_reader_claims_no_more_than_max_records(fake_shard):
    fake_shard([[_record(1, T0), _record(2, T0), _record(3, T0)]])
    config = KinesisReadConfig(stream="s", start_position="TRIM_HORIZON", max_records=2, read_id="budget-test")
    dofn = kinesis._ReadShard(config)
    dofn.setup()
    shard = KinesisShard("s", "shardId-0")
    tracker = ThreadsafeRestrictionTracker(dofn.create_tracker(dofn.initial_restriction(shard)))
    estimator = dofn.create_watermark_estimator(None)
    outputs = list(dofn.process(shard, RestrictionTrackerView(tracker), estimator))
    assert [len(out.value.records) for out in outputs] == [2]
    assert not tracker.try_claim(STOP)  # the spent budget already stopped the shard
    tracker.check_done()


def test_reader_watermark_is_monotonic_and_advances_when_idle(fake_shard):
    # Event-time watermark: a later page with older events never pulls the watermark back.
    pages = [[b'{"event_time": 500000}', b'{"event_time": 400000}'], [b'{"event_time": 300000}']]
    fake_shard([[{**_record(i * 10 + j, T0), "Data": data} for j, data in enumerate(page)]
                for i, page in enumerate(pages)])
    clock = Clock(10_000.0)
    config = KinesisReadConfig(stream="s", watermark="event_time", start_position="TRIM_HORIZON")
    dofn = kinesis._ReadShard(config)
    dofn._clock = clock  # the reader's injectable clock (StreamReadFn)
    dofn.setup()
    shard = KinesisShard("s", "shardId-0")
    assert dofn.create_watermark_estimator(None).current_watermark() == MIN_TIMESTAMP
    outputs, residual, estimator = _read_once(dofn, shard, dofn.initial_restriction(shard))
    assert residual is not None  # caught up: polls again later
    assert [out.timestamp.micros // 1000 for out in outputs] == [400_000, 400_000]
    assert estimator.watermark_ms() == 400_000
    # The empty page started the quiet time. Idle settings: 2 s of quiet, then now - 2 s.
    clock.now += 1.0
    assert not estimator.idle() and estimator.watermark_ms() == 400_000
    clock.now += 1.5
    assert estimator.idle() and estimator.watermark_ms() == int((clock.now - 2.0) * 1000)
    # The state carries the watermark and the quiet time through a checkpoint.
    again = dofn.create_watermark_estimator(estimator.get_estimator_state())
    assert again.watermark_ms() == estimator.watermark_ms()
    clock.now -= 5.0  # a clock stepping back never moves the watermark back
    assert not again.idle() and again.watermark_ms() == estimator.watermark_ms()


def test_reader_reports_lag_records_bytes_and_the_trackers_backlog(monkeypatch):
    """source_lag_ms is MillisBehindLatest; the tracker's remaining work follows it down to the
    open shard alone; each claimed record is counted once."""

    class BehindShard(FakeShard):
        def get_records(self, ShardIterator, Limit):  # noqa: N803
            response = super().get_records(ShardIterator, Limit)
            response["MillisBehindLatest"] = [9_000, 3_000][int(ShardIterator)] if int(ShardIterator) < 2 else 0
            return response

    client = BehindShard([[_record(1, T0), _record(2, T0)], [_record(3, T0 + 6_000)]])
    monkeypatch.setattr(kinesis, "make_client", lambda *args, **kwargs: client)
    monkeypatch.setattr(kinesis, "MIN_CALL_INTERVAL_S", 0.0)
    LIVE.reset()
    clock = Clock(T0 / 1000 + 10.0)
    config = KinesisReadConfig(stream="s", start_position="TRIM_HORIZON", read_to_latest=True)
    dofn = kinesis._ReadShard(config)
    dofn._clock = clock
    dofn.setup()
    shard = KinesisShard("s", "shardId-0")
    tracker = dofn.create_tracker(dofn.initial_restriction(shard))
    seen = []

    def sample(_count: int) -> None:
        seen.append((LIVE.gauge(SOURCE_LAG_MS)["s/shardId-0"], tracker.current_progress().remaining_work))

    stop_listening = listen_to_claims(sample)
    try:
        view = RestrictionTrackerView(ThreadsafeRestrictionTracker(tracker))
        outputs = list(dofn.process(shard, view, dofn.create_watermark_estimator(None)))
    finally:
        stop_listening()
    assert [len(out.value.records) for out in outputs] == [2, 1]
    assert seen == [(9_000, 10.0), (3_000, 4.0)]  # seconds behind plus one for the open shard
    assert LIVE.gauge(SOURCE_LAG_MS)["s/shardId-0"] == 0  # the last page: caught up
    assert tracker.current_progress().remaining_work == 0  # read to latest: done
    assert LIVE.counter(SOURCE_RECORDS_READ) == 3 and LIVE.counter(BYTES_READ) == len(b"r1r2r3")
    assert LIVE.gauge(WATERMARK_LAG_MS)["s/shardId-0"] == 4_000  # clock minus the newest arrival read
    assert SOURCE_BACKLOG_RECORDS not in LIVE.snapshot()[1]  # Kinesis does not tell
