"""Tracker, backoff and the batch type: no server. The watermark and the record budget are the
shared ones of io_connectors.read_core (tests/unit/test_read_core.py); how the reader uses them
is in tests/unit/test_kinesis_reader.py."""

from __future__ import annotations

import pickle

import pytest
from apache_beam.coders import FastPrimitivesCoder, PickleCoder

from io_connectors.kinesis_core import (
    ADOPT,
    BEHIND,
    EMPTY,
    SHARD_END,
    STOP,
    Backoff,
    KinesisBatch,
    ShardRestriction,
    ShardTracker,
    StartPosition,
)

BIG = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898  # sequence numbers are huge ints


def test_claims_in_order_then_checkpoint_splits_after_last_claim():
    tracker = ShardTracker(ShardRestriction(StartPosition("TRIM_HORIZON"), shard_id="s"))
    assert tracker.try_claim((BIG + 1, 500))
    assert tracker.try_claim(str(BIG + 5))
    primary, residual = tracker.try_split(0)
    assert primary.stop_after == BIG + 5 and primary.start.kind == "TRIM_HORIZON"
    assert residual.start == StartPosition("AFTER_SEQUENCE_NUMBER", str(BIG + 5))
    assert residual.stop_after is None and residual.shard_id == "s" and residual.backlog_ms == 500
    # The primary may claim nothing more; it is done.
    assert not tracker.try_claim(BIG + 6)
    assert not tracker.try_claim(SHARD_END)
    tracker.check_done()
    assert tracker.try_split(0) is None


def test_resumed_tracker_refuses_the_checkpointed_record_and_accepts_the_next():
    residual = ShardRestriction(StartPosition.after(BIG), shard_id="s")
    tracker = ShardTracker(residual)
    with pytest.raises(ValueError, match="strictly increase"):
        tracker.try_claim(BIG)  # re-reading the checkpointed record is a bug, not a no-op
    assert tracker.try_claim(BIG + 1)
    assert StartPosition.after(BIG).iterator_args() == {
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "StartingSequenceNumber": str(BIG),
    }


def test_positions_must_strictly_increase():
    tracker = ShardTracker(ShardRestriction(StartPosition("TRIM_HORIZON")))
    assert tracker.try_claim(10)
    with pytest.raises(ValueError, match="10"):
        tracker.try_claim(10)


def test_checkpoint_before_any_claim_keeps_the_start():
    start = StartPosition("AT_TIMESTAMP", timestamp_ms=1_700_000_000_000)
    tracker = ShardTracker(ShardRestriction(start, shard_id="s"))
    primary, residual = tracker.try_split(0)
    assert primary.stop_after == EMPTY and residual.start == start
    tracker.check_done()
    assert ShardTracker(primary).is_done()


def test_only_checkpoints_split_and_end_claims_finish():
    tracker = ShardTracker(ShardRestriction(StartPosition("TRIM_HORIZON")))
    assert tracker.try_split(0.5) is None
    with pytest.raises(ValueError, match="not done"):
        tracker.check_done()
    assert tracker.try_claim(1)
    assert tracker.try_claim(SHARD_END)
    tracker.check_done()
    assert not tracker.try_claim(STOP)
    assert tracker.try_split(0) is None


def test_progress_reports_backlog():
    tracker = ShardTracker(ShardRestriction(StartPosition("TRIM_HORIZON")))
    tracker.try_claim((7, 30_000))
    progress = tracker.current_progress()
    assert progress.completed_work == 1 and progress.remaining_work == pytest.approx(31.0)
    tracker.try_claim(STOP)
    assert tracker.current_progress().remaining_work == 0


def test_spare_reader_adopts_once():
    tracker = ShardTracker(ShardRestriction(StartPosition("TRIM_HORIZON")))
    assert tracker.try_claim((ADOPT, "shardId-000000000004", ("shardId-000000000001",)))
    restriction = tracker.current_restriction()
    assert restriction.shard_id == "shardId-000000000004" and restriction.parents == ("shardId-000000000001",)
    with pytest.raises(ValueError, match="spare"):
        tracker.try_claim((ADOPT, "other", ()))


def test_restrictions_survive_coders():
    restriction = ShardRestriction(StartPosition.after(BIG), None, 12, "s", ("p",))
    coder = PickleCoder()
    assert coder.decode(coder.encode(restriction)) == restriction


def test_backoff_grows_with_jitter_per_shard_and_resets():
    backoff = Backoff(base_s=0.1, cap_s=1.0, rng=lambda: 1.0)
    assert [backoff.failure("a") for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.failure("b") == pytest.approx(0.1)  # other shards are unaffected
    backoff.success("a")
    assert backoff.attempts("a") == 0
    low = Backoff(base_s=0.1, rng=lambda: 0.0)
    assert low.failure("a") == pytest.approx(0.05)


def test_kinesis_batch_keeps_partition_keys_through_coders():
    batch = KinesisBatch("kinesis://s/shardId-0", [b"a", b"b"], ["1", "2"], 0, [5, 6], ["k1", "k2"], "shardId-0")
    for coder in (FastPrimitivesCoder(), PickleCoder()):
        decoded = coder.decode(coder.encode(batch))
        assert tuple(decoded) == tuple(batch)
        assert decoded.partition_keys == ["k1", "k2"] and decoded.shard_id == "shardId-0"
    assert pickle.loads(pickle.dumps(batch)).partition_keys == ["k1", "k2"]
    assert batch.position(1) == "kinesis://s/shardId-0@2"


def test_a_page_without_records_reports_the_backlog_without_claiming():
    tracker = ShardTracker(ShardRestriction(StartPosition("TRIM_HORIZON"), shard_id="s"))
    assert tracker.current_progress().remaining_work == 1.0  # not read yet: unknown, still work
    assert tracker.try_claim((7, 30_000))
    assert tracker.try_claim((BEHIND, 4_000))  # claims nothing
    assert tracker.current_progress().completed_work == 1
    assert tracker.current_progress().remaining_work == pytest.approx(5.0)
    tracker.try_claim((BEHIND, 0))
    assert tracker.current_progress().remaining_work == 1.0  # caught up: the open shard alone
    primary, residual = tracker.try_split(0)
    assert residual.backlog_ms == 0 and primary.stop_after == 7  # the residual's size is the real backlog
    assert not tracker.try_claim((BEHIND, 9_000))  # the primary is done: nothing to report
    assert tracker.current_progress().remaining_work == 0
