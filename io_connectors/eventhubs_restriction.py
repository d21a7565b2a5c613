"""The restriction of the Event Hubs reader, testable without a pipeline (its watermark and
record budget are the shared ones of io_connectors.read_core).

Restriction per partition: an OffsetRange of Kafka offsets. A live partition has no end, so
its range ends at OFFSET_INFINITY; restriction_size reports the real backlog instead.
"""

from __future__ import annotations

from apache_beam.io.iobase import RestrictionProgress
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker

OFFSET_INFINITY = 2**63 - 1


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
