"""Restriction tracker and watermark estimator of the Event Hubs reader, without a pipeline or a
broker (the clock is injected). The record budget is read_core's (tests/unit/test_read_core.py)."""

from __future__ import annotations

import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from io_connectors.eventhubs import PartitionRef, ReadSettings, _ReadPartition
from io_connectors.eventhubs_client import EventHubsTarget, NewestTimes
from io_connectors.eventhubs_restriction import OFFSET_INFINITY, PartitionEnd, PartitionTracker, remaining_size
from io_connectors.metrics import LIVE, SOURCE_BACKLOG_RECORDS, SOURCE_LAG_MS, WATERMARK_LAG_MS
from io_connectors.read_core import IdleWatermarkEstimator, SourceMetrics

TARGET = EventHubsTarget("local", "orders", bootstrap="127.0.0.1:9", security_protocol="plaintext")


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------- tracker


def test_checkpoint_and_resume_claim_every_offset_exactly_once() -> None:
    # Offsets with gaps (compaction, transaction markers); checkpoint after every two claims.
    offsets = [0, 1, 2, 5, 6, 9, 10, 11, 20]
    restriction = OffsetRange(0, OFFSET_INFINITY)
    claimed: list[int] = []
    remaining = list(offsets)
    while remaining:
        tracker = PartitionTracker(restriction)
        for offset in remaining[:2]:
            assert tracker.try_claim(offset)
            claimed.append(offset)
        primary, residual = tracker.try_split(0)
        tracker.check_done()
        assert primary.stop == residual.start == claimed[-1] + 1
        assert residual.stop == OFFSET_INFINITY
        restriction = residual
        remaining = [o for o in remaining if o >= restriction.start]
    assert claimed == offsets


def test_endless_range_refuses_fractional_splits_but_checkpoints() -> None:
    tracker = PartitionTracker(OffsetRange(10, OFFSET_INFINITY))
    assert not tracker.is_bounded()
    assert tracker.try_claim(10)
    assert tracker.try_split(0.5) is None  # would start a reader near offset 2**62
    primary, residual = tracker.try_split(0)
    assert (primary.start, primary.stop, residual.start, residual.stop) == (10, 11, 11, OFFSET_INFINITY)


def test_bounded_range_splits_and_stops_at_its_end() -> None:
    tracker = PartitionTracker(OffsetRange(0, 100))
    assert tracker.is_bounded()
    assert tracker.try_claim(0)
    primary, residual = tracker.try_split(0.5)
    assert primary.stop == residual.start and 0 < primary.stop < 100
    assert not tracker.try_claim(primary.stop)  # beyond the primary: refused, reading ends
    tracker.check_done()


def test_finish_marks_the_rest_done_and_claims_must_increase() -> None:
    tracker = PartitionTracker(OffsetRange(5, OFFSET_INFINITY))
    assert tracker.try_claim(7)
    with pytest.raises(ValueError, match="strictly increase|should"):
        tracker.try_claim(7)
    tracker.finish()
    tracker.check_done()  # no error: the bounded read is complete


def test_unfinished_tracker_is_reported() -> None:
    tracker = PartitionTracker(OffsetRange(5, 50))
    tracker.try_claim(5)
    with pytest.raises(ValueError):
        tracker.check_done()


def test_progress_and_size_come_from_end_offsets() -> None:
    tracker = PartitionTracker(OffsetRange(100, OFFSET_INFINITY))
    tracker.try_claim(104)
    progress = tracker.current_progress()
    assert progress.completed_work == 5 and progress.remaining_work == 1
    assert remaining_size(OffsetRange(100, OFFSET_INFINITY), end_offset=160) == 60
    assert remaining_size(OffsetRange(100, OFFSET_INFINITY), end_offset=None) == 1.0
    assert remaining_size(OffsetRange(100, OFFSET_INFINITY), end_offset=90) == 0
    assert remaining_size(OffsetRange(100, 130), end_offset=160) == 30


# ----------------------------------------------------------------------------- watermark
# The reader's estimator: read_core's IdleWatermarkEstimator, fed with enqueued times, idle after
# 5 s and then lagging the clock by those 5 s.


def _estimator(clock: FakeClock, state: tuple | None = None, idle_after_s: float = 5) -> IdleWatermarkEstimator:
    reader = _ReadPartition(TARGET, ReadSettings(idle_after_s=idle_after_s), clock=clock)
    return reader.create_watermark_estimator(state)


def test_watermark_follows_enqueued_time_and_never_moves_back() -> None:
    estimator = _estimator(FakeClock())
    assert estimator.current_watermark() == MIN_TIMESTAMP
    estimator.observe(2_000)
    assert estimator.current_watermark() == Timestamp(micros=2_000_000)
    estimator.observe(1_500)  # an out-of-order producer timestamp
    assert estimator.current_watermark() == Timestamp(micros=2_000_000)
    estimator.observe(3_000)
    assert estimator.current_watermark() == Timestamp(micros=3_000_000)


def test_idle_partition_advances_only_after_the_idle_time() -> None:
    clock = FakeClock(now=10_000.0)
    estimator = _estimator(clock)
    estimator.observe(9_000_000)
    estimator.idle()
    assert estimator.current_watermark() == Timestamp(micros=9_000_000 * 1000)
    clock.now += 4.9
    estimator.idle()
    assert estimator.current_watermark() == Timestamp(micros=9_000_000 * 1000)
    clock.now += 0.2  # idle for 5.1 s
    estimator.idle()
    assert estimator.current_watermark() == Timestamp(micros=int((clock.now - 5) * 1000) * 1000)
    clock.now += 10
    estimator.idle()
    advanced = estimator.current_watermark()
    assert advanced == Timestamp(micros=int((clock.now - 5) * 1000) * 1000)
    # A new record resets idleness but cannot pull the watermark back.
    estimator.observe(9_000_001)
    assert estimator.current_watermark() == advanced


def test_idle_advance_never_goes_below_observed_time() -> None:
    clock = FakeClock(now=100.0)
    estimator = _estimator(clock, idle_after_s=1)
    estimator.observe(500_000)  # enqueued "in the future" of a skewed worker clock
    estimator.idle()
    clock.now += 2
    estimator.idle()
    assert estimator.current_watermark() == Timestamp(micros=500_000 * 1000)


def test_state_round_trip_keeps_watermark_and_idle_start() -> None:
    clock = FakeClock(now=50.0)
    first = _estimator(clock)
    first.observe(40_000)
    first.idle()
    state = first.get_estimator_state()
    assert state == (40_000, 50.0)
    clock.now = 56.0  # idle since 50 s, carried across the checkpoint
    resumed = _estimator(clock, state)
    resumed.idle()
    assert resumed.current_watermark() == Timestamp(micros=51_000 * 1000)


def test_a_timestamp_start_is_the_first_watermark() -> None:
    """Records enqueued before the start time are skipped, so the watermark starts there."""
    reader = _ReadPartition(TARGET, ReadSettings(), clock=FakeClock())
    restriction = OffsetRange(0, OFFSET_INFINITY)
    state = reader.initial_estimator_state(PartitionRef(0, 0, 123_000, True), restriction)
    assert reader.create_watermark_estimator(state).current_watermark() == Timestamp(micros=123_000_000)
    unset = reader.initial_estimator_state(PartitionRef(1, 0, None, True), restriction)
    assert reader.create_watermark_estimator(unset).current_watermark() == MIN_TIMESTAMP


# ------------------------------------------------------------------------------- backlog and lag


def test_progress_counts_down_to_the_end_offset_the_reader_reports() -> None:
    tracker = PartitionTracker(OffsetRange(100, OFFSET_INFINITY))
    assert tracker.try_claim(PartitionEnd(160))  # a report, not a record: claims nothing
    assert (tracker.current_progress().completed_work, tracker.current_progress().remaining_work) == (0, 60)
    for offset in range(100, 130):
        assert tracker.try_claim(offset)
    assert (tracker.current_progress().completed_work, tracker.current_progress().remaining_work) == (30, 30)
    tracker.try_claim(PartitionEnd(170))  # the partition grew meanwhile
    assert tracker.current_progress().remaining_work == 40
    for offset in range(130, 170):
        tracker.try_claim(offset)
    assert tracker.current_progress().remaining_work == 0  # caught up, still reading
    primary, residual = tracker.try_split(0)
    assert (primary.stop, residual.start) == (170, 170)
    assert tracker.current_progress().remaining_work == 0
    tracker.check_done()
    resumed = PartitionTracker(residual)
    resumed.finish()
    assert not resumed.try_claim(PartitionEnd(200))  # over: nothing left to report
    assert resumed.current_progress().remaining_work == 0
    resumed.check_done()


class _Message:
    def __init__(self, timestamp_ms: int) -> None:
        self._timestamp_ms = timestamp_ms

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)


class _FakeConsumer:
    """The consumer calls the lag reporting makes: the cached end offset and one-record peeks."""

    def __init__(self, end: int, times: dict[int, int]) -> None:
        self.end, self.times, self.peeks = end, times, []

    def get_watermark_offsets(self, partition: object, cached: bool = False) -> tuple[int, int]:
        assert cached  # from the last fetch response: no request
        return 0, self.end

    def assign(self, partitions: list) -> None:
        self.peeks.append(partitions[0].offset)

    def consume(self, count: int, timeout: float) -> list[_Message]:
        return [_Message(self.times[self.peeks[-1]])]

    def unassign(self) -> None:
        pass


def test_reader_reports_backlog_and_lag_from_the_newest_records_enqueued_time() -> None:
    LIVE.reset()
    clock = FakeClock(1_000.0)
    times = {offset: 500_000 + offset * 10 for offset in range(1_000)}  # enqueued 10 ms apart
    consumer = _FakeConsumer(end=1_000, times=times)
    reader = _ReadPartition(TARGET, ReadSettings(), clock=clock)
    reader._consumer = consumer
    reader._metrics = SourceMetrics(clock)
    newest_clock = FakeClock(0.0)
    reader._newest = NewestTimes(lambda: consumer, TARGET.hub, refresh_s=2.0, clock=newest_clock)
    tracker = PartitionTracker(OffsetRange(0, OFFSET_INFINITY))
    estimator = reader.create_watermark_estimator(None)
    split = "orders/3"

    claimed = [0]  # the next offset to claim

    def read_up_to(next_offset: int) -> None:
        for offset in range(claimed[0], next_offset):
            assert tracker.try_claim(offset)
        claimed[0] = next_offset
        estimator.observe(times[next_offset - 1])
        reader._report(3, next_offset, times[next_offset - 1], tracker, estimator)

    read_up_to(100)
    assert LIVE.gauge(SOURCE_BACKLOG_RECORDS)[split] == 900
    assert LIVE.gauge(SOURCE_LAG_MS)[split] == times[999] - times[99]  # newest at the end vs last read
    assert tracker.current_progress().remaining_work == 900
    assert LIVE.gauge(WATERMARK_LAG_MS)[split] == 1_000_000 - times[99]
    read_up_to(600)
    assert consumer.peeks == [999]  # the end did not move: its time is known
    assert LIVE.gauge(SOURCE_LAG_MS)[split] == times[999] - times[599]
    read_up_to(1_000)  # caught up: no peek needed
    assert LIVE.gauge(SOURCE_BACKLOG_RECORDS)[split] == 0 and LIVE.gauge(SOURCE_LAG_MS)[split] == 0
    assert tracker.current_progress().remaining_work == 0 and consumer.peeks == [999]


def test_newest_time_is_read_again_only_after_the_refresh_interval_when_the_end_moves() -> None:
    consumer = _FakeConsumer(end=0, times={9: 1_000, 19: 2_000, 29: 3_000})
    clock = FakeClock(0.0)
    newest = NewestTimes(lambda: consumer, "orders", refresh_s=2.0, clock=clock)
    assert newest.newest_ms(0, 10) == 1_000
    clock.now = 1.0
    assert newest.newest_ms(0, 20) == 1_000  # moved within the interval: the known time (under-reports)
    clock.now = 2.5
    assert newest.newest_ms(0, 20) == 2_000 and consumer.peeks == [9, 19]
    assert newest.newest_ms(0, 20) == 2_000 and consumer.peeks == [9, 19]
