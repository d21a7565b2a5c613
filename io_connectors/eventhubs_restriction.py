"""The restriction of the Event Hubs reader, testable without a pipeline (its watermark and
record budget are the shared ones of io_connectors.read_core).

Restriction per partition: an OffsetRange of Kafka offsets. A live partition has no end, so
its range ends at OFFSET_INFINITY; restriction_size and current_progress report the real backlog
instead, from the partition's end offset.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from apache_beam.io.iobase import RestrictionProgress
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker

OFFSET_INFINITY = 2**63 - 1


class PartitionEnd(NamedTuple):
    """Not a record: the partition's end offset (the offset the next record is written at) as the
    reader last saw it. Claiming it claims nothing; current_progress reports end minus position."""

    offset: int


class PartitionTracker(OffsetRestrictionTracker):
    """OffsetRestrictionTracker over one partition's offsets, safe with an endless range.

    Offsets need not be consecutive (compaction, transaction markers), only increasing.
    An endless range refuses fractional splits: a split point computed from OFFSET_INFINITY
    would start a second reader far past the log's end. Checkpoints (fraction 0) always work.
    """

    def __init__(self, offset_range: OffsetRange) -> None:
        super().__init__(offset_range)
        self._end: int | None = None  # the partition's end offset, reported by the reader

    def try_claim(self, position: Any) -> bool:
        if isinstance(position, PartitionEnd):
            self._end = position.offset
            return not self._finished()
        return super().try_claim(position)

    def _finished(self) -> bool:
        return self._last_claim_attempt is not None and self._last_claim_attempt >= self._range.stop - 1

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
        """Offsets claimed, and offsets left: up to the range's end, or on an endless range up to
        the last end offset the reader saw (1.0 before it saw one: unknown, not none)."""
        next_offset = self._range.start if self._current_position is None else self._current_position + 1
        done = float(next_offset - self._range.start)
        if self._finished():
            return RestrictionProgress(completed=done, remaining=0.0)
        left = OffsetRange(next_offset, self._range.stop)
        return RestrictionProgress(completed=done, remaining=remaining_size(left, self._end))


def remaining_size(restriction: OffsetRange, end_offset: int | None) -> float:
    """Backlog in records: offsets left up to the partition's end (or the range's end)."""
    stop = restriction.stop
    if stop == OFFSET_INFINITY:
        if end_offset is None:
            return 1.0  # unknown: keep the element schedulable
        stop = end_offset
    return float(max(stop - restriction.start, 0))
