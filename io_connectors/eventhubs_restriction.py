"""Restriction, watermark and read-budget pieces of the Event Hubs reader, testable without a
pipeline (clocks are injected).

Restriction per partition: an OffsetRange of Kafka offsets. A live partition has no end, so
its range ends at OFFSET_INFINITY; restriction_size reports the real backlog instead.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from apache_beam.io.iobase import RestrictionProgress
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import WatermarkEstimator
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

OFFSET_INFINITY = 2**63 - 1

Clock = Callable[[], float]


class PartitionTracker(OffsetRestrictionTracker):
    """OffsetRestrictionTracker over one partition's offsets, safe with an endless range.

    Offsets need not be consecutive (compaction, transaction markers), only increasing.
    An endless range refuses fractional splits: a split point computed from OFFSET_INFINITY
    would start a second reader far past the log's end. Checkpoints (fraction 0) always work.
    """

    def is_bounded(self) -> bool:
        return self._range.stop != OFFSET_INFINITY

    def try_split(self, fraction_of_remainder: float):  # noqa: ANN201 - Beam's signature
        if fraction_of_remainder > 0 and not self.is_bounded():
            return None
        return super().try_split(fraction_of_remainder)

    def finish(self) -> None:
        """Declare the rest of the range done (bounded read over, or partition gone)."""
        self.try_claim(self._range.stop)

    def current_progress(self) -> RestrictionProgress:
        if self.is_bounded():
            return super().current_progress()
        done = 0 if self._current_position is None else self._current_position + 1 - self._range.start
        # Backlog of an endless range is unknown here; restriction_size reports it from end offsets.
        return RestrictionProgress(completed=float(max(done, 0)), remaining=1.0)


def remaining_size(restriction: OffsetRange, end_offset: int | None) -> float:
    """Backlog in records: offsets left up to the partition's end (or the range's end)."""
    stop = restriction.stop
    if stop == OFFSET_INFINITY:
        if end_offset is None:
            return 1.0  # unknown: keep the element schedulable
        stop = end_offset
    return float(max(stop - restriction.start, 0))


class EnqueuedTimeWatermarkEstimator(WatermarkEstimator):
    """Watermark = the latest enqueued time seen on the partition, never moving backwards.

    Enqueued times are stamped by the service and grow per partition, so the newest one
    bounds everything still to come. A partition that has caught up and stays quiet for
    `idle_after_s` would otherwise pin the stage's watermark: then the watermark advances to
    clock() - idle_after_s (the allowance also absorbs worker/service clock skew).

    State (what Beam checkpoints with the restriction): (watermark_ms | None, idle_since_s | None).
    """

    def __init__(self, state: tuple[int | None, float | None] | None, idle_after_s: float = 5.0,
                 clock: Clock = time.time) -> None:
        watermark_ms, idle_since = state if state is not None else (None, None)
        self._watermark_ms = watermark_ms
        self._idle_since = idle_since
        self._idle_after_s = idle_after_s
        self._clock = clock

    def observe_timestamp(self, timestamp: Timestamp) -> None:
        self.observe_ms(timestamp.micros // 1000)

    def observe_ms(self, enqueued_ms: int) -> None:
        """A record with this enqueued time was emitted; the partition is not idle."""
        if self._watermark_ms is None or enqueued_ms > self._watermark_ms:
            self._watermark_ms = enqueued_ms
        self._idle_since = None

    def caught_up(self) -> None:
        """The reader reached the partition's end; advance if it has stayed there long enough."""
        now = self._clock()
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since >= self._idle_after_s:
            idle_mark = int((now - self._idle_after_s) * 1000)
            if self._watermark_ms is None or idle_mark > self._watermark_ms:
                self._watermark_ms = idle_mark

    def current_watermark(self) -> Timestamp:
        if self._watermark_ms is None:
            return MIN_TIMESTAMP
        return Timestamp(micros=self._watermark_ms * 1000)

    def get_estimator_state(self) -> tuple[int | None, float | None]:
        return self._watermark_ms, self._idle_since


class ReadBudget:
    """--max_records across every partition a worker process reads.

    Records are taken from the budget before they are claimed, so a partition never claims
    (and so never commits) a record it will not emit. The budget is per process: exact on
    the DirectRunner; on multi-worker runners each worker stops after max_records (use
    --max_read_time or read-to-latest for bounded reads there).
    """

    _lock = threading.Lock()
    _remaining: dict[str, int] = {}

    def __init__(self, key: str, limit: int | None) -> None:
        self.key = key
        self.limit = limit

    def take(self, wanted: int) -> int:
        """Up to `wanted` records granted now (all of them when there is no limit)."""
        if self.limit is None:
            return wanted
        with self._lock:
            left = self._remaining.setdefault(self.key, self.limit)
            granted = min(left, wanted)
            self._remaining[self.key] = left - granted
            return granted

    def give_back(self, count: int) -> None:
        if self.limit is None or count <= 0:
            return
        with self._lock:
            self._remaining[self.key] = self._remaining.get(self.key, 0) + count

    @property
    def exhausted(self) -> bool:
        if self.limit is None:
            return False
        with self._lock:
            return self._remaining.setdefault(self.key, self.limit) <= 0
