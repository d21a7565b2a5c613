"""KPL de-aggregation: user records, corrupt aggregates, the shard hash-range rule, positions with
sub-sequence numbers in the tracker, and the reader resuming inside an aggregate (fake client).
Aggregates are made with aws-kinesis-agg's aggregator."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker

from io_connectors import kinesis, kinesis_kpl
from io_connectors.after_run import AfterRun
from io_connectors.kinesis_core import (
    STOP,
    KinesisReadConfig,
    KinesisShard,
    ShardRestriction,
    ShardTracker,
    StartPosition,
    UserRecordPosition,
    resume_text,
)
from io_connectors.kinesis_producer import kpl_aggregate
from io_connectors.records import UNREADABLE_BLOCK, ReadFailure

ARRIVAL = datetime(2026, 1, 1, tzinfo=UTC)


def record(sequence: int, data: bytes, key: str = "pk") -> dict:
    return {"SequenceNumber": str(sequence), "Data": data, "PartitionKey": key, "ApproximateArrivalTimestamp": ARRIVAL}


def aggregated(sequence: int, *user: tuple) -> dict:
    key, _, data = kpl_aggregate(user)
    return record(sequence, data, key)


def test_aggregates_split_into_user_records_and_plain_records_pass_unchanged():
    plain = record(1, b'{"a": 1}')
    page = [plain, aggregated(2, ("k1", b"one"), ("k2", b"two"), ("k1", b"three")), record(3, b"x")]
    out = kinesis_kpl.deaggregate(page)
    assert out[0] is plain and out[-1] is page[-1]
    users = out[1:-1]
    assert [(u["Data"], u["PartitionKey"], u["SubSequenceNumber"], u["LastInRecord"]) for u in users] == [
        (b"one", "k1", 0, False), (b"two", "k2", 1, False), (b"three", "k1", 2, True)]
    assert {u["SequenceNumber"] for u in users} == {"2"} and users[0]["ApproximateArrivalTimestamp"] == ARRIVAL
    assert [kinesis_kpl.position(r) for r in out] == ["1", "2:0", "2:1", "2:2", "3"]
    assert kinesis_kpl.deaggregate(page[:1]) == [plain]  # a page without aggregates is left alone


def _framed(body: bytes) -> bytes:
    return kinesis_kpl.MAGIC + body + hashlib.md5(body).digest()


@pytest.mark.parametrize("data,reason", [
    (None, "MD5 trailer"),  # a flipped byte in the body
    (_framed(b"\xff\xff\xff\xff"), "protobuf body cannot be read"),
    # A user record without its (required) partition key index: refused by the parser or by the table check.
    (_framed(b"\x1a\x04\x1a\x02hi"), "KPL aggregate: "),
    (_framed(b"\n\x01k\x1a\x05\x08\x03\x1a\x01x"), "names partition key 3 of a 1-entry table"),
    (_framed(b"\n\x01k\x12\x03abc\x1a\x07\x08\x00\x10\x00\x1a\x01x"), "explicit hash key 'abc'"),
    (_framed(b"\n\x01k"), "holds no user records"),
])
def test_a_corrupt_aggregate_is_one_read_failure_with_the_reason_and_the_whole_payload(data, reason):
    if data is None:
        good = aggregated(7, ("k", b"one"), ("k", b"two"))["Data"]
        data = good[:6] + bytes([good[6] ^ 1]) + good[7:]
    out = kinesis_kpl.deaggregate([record(7, data), record(8, b"plain")])
    assert len(out) == 2 and out[1]["Data"] == b"plain"
    failure = out[0]["Data"]
    assert isinstance(failure, ReadFailure) and failure.kind == UNREADABLE_BLOCK
    assert reason in failure.reason and "sequence number 7" in failure.reason
    assert failure.payload == data
    assert kinesis_kpl.position(out[0]) == "7"  # claimed and shown as the whole record


def test_too_short_for_a_trailer_is_a_plain_record_as_kcl_reads_it():
    short = record(1, kinesis_kpl.MAGIC + b"\x00" * 16)
    assert kinesis_kpl.deaggregate([short]) == [short]


def test_runs_put_each_read_failure_in_a_batch_of_its_own():
    failure = {"Data": ReadFailure("bad"), "SequenceNumber": "3"}
    records = [record(1, b"a"), record(2, b"b"), failure, record(4, b"c")]
    assert [[r["SequenceNumber"] for r in run] for run in kinesis_kpl.runs(records)] == [["1", "2"], ["3"], ["4"]]


def test_an_aggregate_with_explicit_hash_keys_outside_the_shard_is_dropped_whole_as_kcl_does():
    dropped = []
    inside = aggregated(1, ("k", b"a", "100"), ("k", b"b", "150"))
    straddles = aggregated(2, ("k", b"c", "120"), ("k", b"d", "250"))
    out = kinesis_kpl.deaggregate([inside, straddles], lambda: (100, 200), lambda r, n: dropped.append((r, n)))
    assert [u["Data"] for u in out] == [b"a", b"b"]
    assert [(r["SequenceNumber"], n) for r, n in dropped] == [("2", 2)]


def test_partition_key_only_user_records_are_never_dropped_and_need_no_hash_range():
    def no_lookup():
        raise AssertionError("the hash range is looked up only for explicit hash keys")

    out = kinesis_kpl.deaggregate([aggregated(1, ("far-key-1", b"a"), ("far-key-2", b"b"))], no_lookup)
    assert [u["Data"] for u in out] == [b"a", b"b"]
    # An unknown range (the listing failed) keeps every record.
    assert len(kinesis_kpl.deaggregate([aggregated(2, ("k", b"a", "5"))], lambda: None)) == 1


# ---------------------------------------------------------------- positions in the tracker


def test_a_checkpoint_inside_an_aggregate_resumes_at_the_next_user_record():
    tracker = ShardTracker(ShardRestriction(StartPosition("TRIM_HORIZON"), shard_id="s"))
    assert tracker.try_claim((10, 0))
    assert tracker.try_claim(UserRecordPosition(11, 0, False)) and tracker.try_claim(UserRecordPosition(11, 1, False))
    primary, residual = tracker.try_split(0)
    assert primary.stop_after == (11, 1)
    assert residual.start == StartPosition("AT_SEQUENCE_NUMBER", "11", sub_through=1)
    assert residual.start.iterator_args() == {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "11"}
    assert not tracker.try_claim(UserRecordPosition(11, 2, True))  # the residual owns the rest
    tracker.check_done()
    rest = ShardTracker(residual)
    with pytest.raises(ValueError, match="sequence number 11 sub-sequence 1"):
        rest.try_claim(UserRecordPosition(11, 1, False))  # already claimed by the primary
    assert rest.try_claim(UserRecordPosition(11, 2, True)) and rest.try_claim((12, 0))


def test_a_checkpoint_after_an_aggregates_last_user_record_opens_after_it():
    tracker = ShardTracker(ShardRestriction(StartPosition("TRIM_HORIZON"), shard_id="s"))
    assert tracker.try_claim(UserRecordPosition(11, 0, False)) and tracker.try_claim(UserRecordPosition(11, 1, True))
    primary, residual = tracker.try_split(0)
    assert primary.stop_after == 11 and residual.start == StartPosition.after(11)
    tracker.check_done()
    with pytest.raises(ValueError, match="strictly increase"):
        ShardTracker(residual).try_claim(UserRecordPosition(11, 1, True))


def test_stored_positions_name_the_user_record_inside_an_aggregate():
    assert resume_text(11, 1, last=False) == "11:1" and resume_text(11, 2, last=True) == "11"
    assert resume_text("12") == "12"
    assert StartPosition.resume("11:1") == StartPosition("AT_SEQUENCE_NUMBER", "11", sub_through=1)
    assert StartPosition.resume("12") == StartPosition.after(12)


# ---------------------------------------------------------------- the reader, with a fake shard


class FakeStream:
    """One shard whose records sit at sequence numbers 1..n; iterators honour the start position."""

    def __init__(self, records: list[dict], hash_range: tuple[int, int] = (0, 2**128 - 1)) -> None:
        self.records = records
        self.hash_range = hash_range
        self.opened: list[dict] = []
        self.listings = 0

    def get_shard_iterator(self, StreamName, ShardId, ShardIteratorType, StartingSequenceNumber=None):  # noqa: N803
        self.opened.append({"type": ShardIteratorType, "at": StartingSequenceNumber})
        first = {"TRIM_HORIZON": 0, "AT_SEQUENCE_NUMBER": int(StartingSequenceNumber or 0) - 1,
                 "AFTER_SEQUENCE_NUMBER": int(StartingSequenceNumber or 0)}[ShardIteratorType]
        return {"ShardIterator": str(first)}

    def get_records(self, ShardIterator, Limit):  # noqa: N803
        start = int(ShardIterator)
        page = self.records[start:start + Limit]
        return {"Records": page, "NextShardIterator": str(start + len(page)),
                "MillisBehindLatest": 0 if start + len(page) >= len(self.records) else 1000}

    def list_shards(self, StreamName):  # noqa: N803
        self.listings += 1
        low, high = self.hash_range
        return {"Shards": [{"ShardId": "shardId-0", "HashKeyRange": {"StartingHashKey": str(low),
                                                                      "EndingHashKey": str(high)}}]}


@pytest.fixture
def stream(monkeypatch):
    def install(records, hash_range=(0, 2**128 - 1)):
        client = FakeStream(records, hash_range)
        monkeypatch.setattr(kinesis, "make_client", lambda *args, **kwargs: client)
        monkeypatch.setattr(kinesis, "MIN_CALL_INTERVAL_S", 0.0)
        return client
    return install


def _mixed() -> list[dict]:
    """Sequence numbers 1..5: plain, aggregate of 3, corrupt aggregate, aggregate of 2, plain."""
    corrupt = aggregated(3, ("k", b"x"), ("k", b"y"))
    corrupt["Data"] = corrupt["Data"][:-1] + b"\x00"
    return [record(1, b"p1"), aggregated(2, ("a", b"u0"), ("b", b"u1"), ("c", b"u2")), corrupt,
            aggregated(4, ("d", b"v0"), ("e", b"v1")), record(5, b"p5")]


def _process(dofn, shard, restriction, split_after=None):
    """One process() call; with `split_after`, the runner checkpoints after that many claims."""
    tracker = ThreadsafeRestrictionTracker(dofn.create_tracker(restriction))
    split: list = []
    if split_after is not None:
        claims, claim = [0], tracker.try_claim

        def claim_then_checkpoint(position):
            claimed = claim(position)
            claims[0] += claimed
            if claimed and claims[0] == split_after:
                split.append(tracker.try_split(0)[1])  # what a runner's checkpoint does meanwhile
            return claimed
        tracker.try_claim = claim_then_checkpoint
    estimator = dofn.create_watermark_estimator(dofn.initial_estimator_state(shard, restriction))
    outputs = [out.value for out in dofn.process(shard, RestrictionTrackerView(tracker), estimator)]
    tracker.check_done()
    status = tracker.deferred_status()
    return outputs, (split[0] if split else status[0] if status else None)


def _payloads(batches) -> list:
    return [r.reason[:13] if isinstance(r, ReadFailure) else bytes(r) for b in batches for r in b.records]


EVERYTHING = [b"p1", b"u0", b"u1", b"u2", "KPL aggregate", b"v0", b"v1", b"p5"]


def test_reader_emits_user_records_with_positions_and_the_corrupt_aggregate_alone(stream):
    stream(_mixed())
    dofn = kinesis._ReadShard(KinesisReadConfig(stream="s", start_position="TRIM_HORIZON", read_to_latest=True))
    dofn.setup()
    shard = KinesisShard("s", "shardId-0")
    outputs, residual = _process(dofn, shard, dofn.initial_restriction(shard))
    assert residual is None and _payloads(outputs) == EVERYTHING
    assert [list(b.positions) for b in outputs] == [["1", "2:0", "2:1", "2:2"], ["3"], ["4:0", "4:1", "5"]]
    assert outputs[0].partition_keys == ["pk", "a", "b", "c"]


def test_reader_with_deaggregation_off_hands_on_kinesis_records(stream):
    records = _mixed()
    stream(records)
    config = KinesisReadConfig(stream="s", start_position="TRIM_HORIZON", read_to_latest=True, deaggregate=False)
    dofn = kinesis._ReadShard(config)
    dofn.setup()
    shard = KinesisShard("s", "shardId-0")
    outputs, _ = _process(dofn, shard, dofn.initial_restriction(shard))
    assert [bytes(r) for b in outputs for r in b.records] == [r["Data"] for r in records]


@pytest.mark.parametrize("split_after", range(1, 8))
def test_a_checkpoint_anywhere_loses_nothing_and_repeats_nothing(stream, split_after):
    client = stream(_mixed())
    dofn = kinesis._ReadShard(KinesisReadConfig(stream="s", start_position="TRIM_HORIZON", read_to_latest=True))
    dofn.setup()
    shard = KinesisShard("s", "shardId-0")
    first, residual = _process(dofn, shard, dofn.initial_restriction(shard), split_after)
    assert residual is not None
    rest, more = _process(dofn, shard, residual)
    assert more is None and _payloads(first) + _payloads(rest) == EVERYTHING
    if split_after in (2, 3, 6):  # inside an aggregate: the residual reads it again from its sequence number
        assert client.opened[-1]["type"] == "AT_SEQUENCE_NUMBER"


def test_a_bounded_run_that_stops_inside_an_aggregate_is_resumed_exactly(stream, tmp_path):
    stream(_mixed())
    store = str(tmp_path / "_positions" / "s.json")
    read_ids = iter(["first", "second"])

    def run():
        after_run = AfterRun()
        after_run.track(store, "kinesis://s")
        config = KinesisReadConfig(stream="s", start_position="TRIM_HORIZON", read_to_latest=True, max_records=3,
                                   position_store=store, read_id=next(read_ids))
        dofn = kinesis._ReadShard(config, after_run)
        dofn.setup()
        shard = KinesisShard("s", "shardId-0")
        outputs, _ = _process(dofn, shard, dofn.initial_restriction(shard))
        after_run.commit()
        return _payloads(outputs), after_run.positions(store)

    first, stored = run()
    assert first == [b"p1", b"u0", b"u1"] and stored == {"shardId-0": "2:1"}
    second, stored = run()
    assert second == [b"u2", "KPL aggregate", b"v0"] and stored == {"shardId-0": "4:0"}


def test_reader_drops_an_aggregate_put_outside_its_shard_and_counts_it(stream):
    client = stream([aggregated(1, ("k", b"in", "10")), aggregated(2, ("k", b"out", "10"), ("k", b"x", "900")),
                     record(3, b"plain")], hash_range=(0, 500))
    dofn = kinesis._ReadShard(KinesisReadConfig(stream="s", start_position="TRIM_HORIZON", read_to_latest=True))
    dofn.setup()
    shard = KinesisShard("s", "shardId-0")
    outputs, _ = _process(dofn, shard, dofn.initial_restriction(shard))
    assert _payloads(outputs) == [b"in", b"plain"] and client.listings == 1


def test_reader_stops_a_spent_budget_inside_an_aggregate():
    tracker = ShardTracker(ShardRestriction(StartPosition.resume("2:0"), shard_id="s"))
    assert tracker.try_claim(UserRecordPosition(2, 1, False)) and tracker.try_claim(STOP)
    tracker.check_done()
