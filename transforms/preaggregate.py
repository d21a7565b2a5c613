"""Decode each source batch and pre-aggregate it in the same step.

Each batch becomes one Partial per (window, dimensions), so the elements that reach the
shuffle scale with groups, not events. Records that cannot be decoded leave as dead letters
(one element of `dead_letter_lines` bytes per batch that has any).
"""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from io_connectors.metrics import DEAD_LETTERS, NAMESPACE, RECORDS_READ, Counter
from io_connectors.records import TRUNCATED_FILE, UNREADABLE_BLOCK, UNREADABLE_TAIL, RawBatch, ReadFailure
from transforms.aggregate import WindowSharder, preaggregate_sessions
from transforms.columnar import ColumnarDecoder, preaggregate_table, table_of
from transforms.decode import Decoder, EventSchema
from transforms.sinks import dead_letter_lines
from transforms.windowing import WindowSpec

DEAD_LETTER = "dead_letter"
# Counters of input a source could not read (see ReadFailure), by kind; the run's summary reads them.
UNREADABLE_COUNTERS = {
    TRUNCATED_FILE: "unreadable_truncated_files",
    UNREADABLE_TAIL: "unreadable_tails",
    UNREADABLE_BLOCK: "unreadable_blocks",
}
RECORDS_UNREADABLE = "records_unreadable"  # records the unreadable parts held, where known
UNREADABLE_UNCOUNTED = "unreadable_uncounted"  # unreadable parts whose record count is unknown


class DecodeAndPreAggregate(beam.DoFn):
    """RawBatch -> pre-aggregated partials, plus dead letters (tagged DEAD_LETTER: per batch that has
    any, one element of `dead_letter_lines` bytes).

    Non-merging windows: ((window_start_ms, window_end_ms, shard), {dims: Partial}).
    Sessions: ((session_start_ms, session_end_ms, dims), Partial), merged later per dims.
    `timestamped` stamps each output with its window's start (needed by Beam's windowing).
    """

    def __init__(
        self,
        schema: EventSchema,
        input_format: str,
        avro_schema: dict | None,
        window: WindowSpec,
        window_shards: int,
        timestamped: bool,
    ) -> None:
        self._schema = schema
        self._input_format = input_format
        self._avro_schema = avro_schema
        self._window = window
        self._window_shards = window_shards
        self._timestamped = timestamped
        # Also counted into LIVE: the live progress line and --metrics_port read them during the run.
        self._records = Counter(RECORDS_READ)
        self._events = Counter("events_decoded")
        self._dead = Counter(DEAD_LETTERS)
        self._unreadable = {kind: Metrics.counter(NAMESPACE, name) for kind, name in UNREADABLE_COUNTERS.items()}
        self._records_unreadable = Metrics.counter(NAMESPACE, RECORDS_UNREADABLE)
        self._uncounted = Metrics.counter(NAMESPACE, UNREADABLE_UNCOUNTED)

    def setup(self) -> None:
        self._decoder = Decoder(self._schema, self._input_format, self._avro_schema)
        self._columnar = None if self._window.merging else ColumnarDecoder(self._schema, self._input_format)
        self._sharder = WindowSharder(self._window_shards)

    def process(self, batch: RawBatch) -> Iterator[Any]:
        table = self._columnar.decode(batch) if self._columnar is not None else None
        unreadable = 0
        if table is None:
            columns, dead = self._decoder.decode(batch)
            if dead:
                self._dead.inc(len(dead))
                # Only a batch with dead letters can hold a ReadFailure: the scan costs nothing otherwise.
                unreadable = self._count_unreadable(batch)
                # One element per batch, already serialized: written as it comes (see WriteDeadLetters).
                lines = dead_letter_lines(dead)
                del dead  # the dicts are not needed while the lines are written
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, lines)
            events = len(columns)
        else:
            events = table.num_rows
        # An unreadable part of the input is not a record read (an over-long record is).
        self._records.inc(len(batch.records) - unreadable)
        self._events.inc(events)
        if not events:
            return
        if self._window.merging:
            groups = preaggregate_sessions(columns, self._window.gap_ms)
        else:
            if table is None:
                table = table_of(columns, self._schema.dimensions)
            groups = preaggregate_table(table, self._window, self._schema.dimensions, self._sharder)
        yield from self._emit(groups)

    def _count_unreadable(self, batch: RawBatch) -> int:
        """Counts the batch's ReadFailures for unreadable input, by kind; returns how many."""
        found = 0
        for raw in batch.records:
            if isinstance(raw, ReadFailure) and raw.kind in self._unreadable:
                found += 1
                self._unreadable[raw.kind].inc()
                if raw.records_lost is None:
                    self._uncounted.inc()
                else:
                    self._records_unreadable.inc(raw.records_lost)
        return found

    def _emit(self, groups: dict) -> Iterator[Any]:
        for key, value in groups.items():
            if self._timestamped:
                # Stamped with the window's start: inside the window, which is all that the
                # window functions and watermark holds need.
                yield TimestampedValue((key, value), Timestamp(micros=key[0] * 1000))
            else:
                yield key, value
