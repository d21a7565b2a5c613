"""Tracker, watermark estimator, backoff, shard planning and the writer's batching: no server."""

from __future__ import annotations

import pickle

import pytest
from apache_beam.coders import FastPrimitivesCoder, PickleCoder
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from io_connectors.kinesis_core import (
    ADOPT,
    EMPTY,
    SHARD_END,
    STOP,
    Backoff,
    KinesisBatch,
    ReadRegistry,
    ShardRestriction,
    ShardTracker,
    ShardWatermarkEstimator,
    StartPosition,
    WatermarkState,
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


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_watermark_is_monotonic():
    clock = Clock(1_000_000)
    est = ShardWatermarkEstimator(clock_ms=clock)
    assert est.current_watermark() == MIN_TIMESTAMP
    est.observe_records([500_000, 400_000])
    assert est.watermark_ms() == 400_000
    est.observe_records([300_000])  # an older batch never pulls the watermark back
    assert est.watermark_ms() == 400_000
    est.observe_records([450_000, 900_000])
    assert est.current_watermark() == Timestamp(micros=450_000 * 1000)


def test_idle_shard_advances_after_threshold_with_injected_clock():
    clock = Clock(10_000_000)
    est = ShardWatermarkEstimator(clock_ms=clock, idle_after_ms=2_000, idle_lag_ms=1_000)
    est.observe_records([9_000_000])
    clock.now += 1_000
    assert not est.observe_idle()  # not idle long enough
    assert est.watermark_ms() == 9_000_000
    clock.now += 1_500
    assert est.observe_idle()
    assert est.watermark_ms() == clock.now - 1_000
    # State round trip keeps both the watermark and the idleness clock.
    state = est.get_estimator_state()
    again = ShardWatermarkEstimator(WatermarkState(*state), clock_ms=clock, idle_after_ms=2_000, idle_lag_ms=1_000)
    assert again.watermark_ms() == est.watermark_ms()
    clock.now -= 5_000  # a clock stepping back never moves the watermark back
    assert not again.observe_idle()
    assert again.watermark_ms() == est.watermark_ms()


def test_idle_from_start_needs_a_first_idle_poll():
    clock = Clock(50_000)
    est = ShardWatermarkEstimator(clock_ms=clock, idle_after_ms=100, idle_lag_ms=10)
    assert not est.observe_idle()
    clock.now += 100
    assert est.observe_idle() and est.watermark_ms() == 50_090


def test_backoff_grows_with_jitter_per_shard_and_resets():
    backoff = Backoff(base_s=0.1, cap_s=1.0, rng=lambda: 1.0)
    assert [backoff.failure("a") for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.failure("b") == pytest.approx(0.1)  # other shards are unaffected
    backoff.success("a")
    assert backoff.attempts("a") == 0
    low = Backoff(base_s=0.1, rng=lambda: 0.0)
    assert low.failure("a") == pytest.approx(0.05)


def test_registry_budget_is_exact():
    registry = ReadRegistry()
    assert registry.take("r", 10, 7) == 7
    assert registry.take("r", 10, 7) == 3
    assert registry.exhausted("r", 10)
    registry.give_back("r", 2)
    assert registry.take("r", 10, 5) == 2
    assert registry.take("r", None, 5) == 5


def test_kinesis_batch_keeps_partition_keys_through_coders():
    batch = KinesisBatch("kinesis://s/shardId-0", [b"a", b"b"], ["1", "2"], 0, [5, 6], ["k1", "k2"], "shardId-0")
    for coder in (FastPrimitivesCoder(), PickleCoder()):
        decoded = coder.decode(coder.encode(batch))
        assert tuple(decoded) == tuple(batch)
        assert decoded.partition_keys == ["k1", "k2"] and decoded.shard_id == "shardId-0"
    assert pickle.loads(pickle.dumps(batch)).partition_keys == ["k1", "k2"]
    assert batch.position(1) == "kinesis://s/shardId-0@2"
