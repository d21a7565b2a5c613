"""The pipeline graph: read -> decode + pre-aggregate -> window/combine -> write.

Each source batch is decoded and pre-aggregated into one Partial per (window, dimensions)
in a single step, so the elements that reach the shuffle scale with groups, not events.
"""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger as beam_trigger
from apache_beam.transforms.window import GlobalWindows, TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from io_connectors.after_run import AfterRun
from io_connectors.records import TRUNCATED_FILE, UNREADABLE_BLOCK, UNREADABLE_TAIL, RawBatch, ReadFailure
from pipelines.adapters import source_from_uri
from pipelines.config import JobConfig
from pipelines.dead_letter_topic import publish_dead_letters
from transforms.aggregate import (
    Groups,
    MergeGroups,
    MergePartials,
    MergeSessions,
    Partial,
    WindowSharder,
    preaggregate_sessions,
)
from transforms.columnar import ColumnarDecoder, preaggregate_table, table_of
from transforms.decode import Decoder
from transforms.overflow import OverflowDeadLetters
from transforms.sinks import (
    NAMESPACE,
    AggregateFileWriter,
    WriteAggregates,
    WriteDeadLetters,
    dead_letter_lines,
    shard_name,
)
from transforms.windowing import WindowSpec, beam_window_fn, build_trigger, iso_utc, window_bounds_ms

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
    """

    def __init__(self, config: JobConfig, timestamped: bool) -> None:
        self._config = config
        self._timestamped = timestamped
        self._records = Metrics.counter(NAMESPACE, "records_read")
        self._events = Metrics.counter(NAMESPACE, "events_decoded")
        self._dead = Metrics.counter(NAMESPACE, "dead_letters")
        self._unreadable = {kind: Metrics.counter(NAMESPACE, name) for kind, name in UNREADABLE_COUNTERS.items()}
        self._records_unreadable = Metrics.counter(NAMESPACE, RECORDS_UNREADABLE)
        self._uncounted = Metrics.counter(NAMESPACE, UNREADABLE_UNCOUNTED)

    def setup(self) -> None:
        config = self._config
        self._decoder = Decoder(config.schema, config.input_format, config.avro_schema)
        self._columnar = None if config.window.merging else ColumnarDecoder(config.schema, config.input_format)
        self._sharder = WindowSharder(config.window_shards)

    def process(self, batch: RawBatch) -> Iterator[Any]:
        config = self._config
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
        if config.window.merging:
            groups = preaggregate_sessions(columns, config.window.gap_ms)
        else:
            if table is None:
                table = table_of(columns, config.schema.dimensions)
            groups = preaggregate_table(table, config.window, config.schema.dimensions, self._sharder)
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


def to_record(
    start_ms: int,
    end_ms: int,
    dims: tuple,
    partial: Partial,
    pane: str,
    pane_index: int,
    dimensions: tuple[str, ...],
) -> dict[str, Any]:
    record: dict[str, Any] = {"window_start": iso_utc(start_ms), "window_end": iso_utc(end_ms)}
    record.update(zip(dimensions, dims, strict=True))
    record.update(partial.metrics())
    record["pane"] = pane
    record["pane_index"] = pane_index
    return record


def shard_records(
    start_ms: int, end_ms: int, groups: dict, pane: str, pane_index: int, dimensions: tuple[str, ...]
) -> list[dict[str, Any]]:
    return [to_record(start_ms, end_ms, dims, part, pane, pane_index, dimensions) for dims, part in groups.items()]


class _CountWindows(beam.PTransform):
    """Counts distinct (start, end) windows into the summary's `windows_written` counter."""

    def expand(self, windows: beam.PCollection) -> beam.PCollection:
        counter = Metrics.counter(NAMESPACE, "windows_written")
        return windows | "Distinct" >> beam.Distinct() | "Count" >> beam.Map(lambda _: counter.inc())


class BoundedAggregate(beam.PTransform):
    """Bounded input: every event is on time, so combine with the window in the key in the
    global window (5x faster on the FnApiRunner than a windowed GroupByKey) and emit one
    ON_TIME pane per group: the same result Beam's windowing gives for bounded data.

    Output: for sessions, one record per session; otherwise one ((start_ms, end_ms, shard),
    Groups) element per window shard."""

    def __init__(self, window: WindowSpec, dimensions: tuple[str, ...], shards: int) -> None:
        super().__init__()
        self._window = window
        self._dims = dimensions
        self._shards = shards

    def expand(self, partials: beam.PCollection) -> beam.PCollection:
        dims = self._dims
        if self._window.merging:
            records = (
                partials
                | "KeyByDims" >> beam.Map(lambda kv: (kv[0][2], (kv[0][0], kv[0][1], kv[1])))
                | "MergeSessions" >> beam.CombinePerKey(MergeSessions())
                | "ToRecords"
                >> beam.FlatMap(lambda kv: [to_record(s, e, kv[0], p, "ON_TIME", 0, dims) for s, e, p in kv[1]])
            )
            _ = records | "Windows" >> beam.Map(lambda r: (r["window_start"], r["window_end"])) | _CountWindows()
            return records
        merged = partials | "Merge" >> beam.CombinePerKey(MergeGroups())
        _ = merged | "Windows" >> beam.Map(lambda kv: kv[0][:2]) | _CountWindows()
        return merged


PANE_TIMING = {0: "EARLY", 1: "ON_TIME", 2: "LATE"}


class _FormatPane(beam.DoFn):
    """Session panes -> records."""

    def __init__(self, dimensions: tuple[str, ...]) -> None:
        self._dims = dimensions

    def process(
        self,
        element: tuple[Any, Any],
        window: Any = beam.DoFn.WindowParam,
        pane: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[dict[str, Any]]:
        start_ms, end_ms = window_bounds_ms(window)
        dims, partial = element
        yield to_record(
            start_ms, end_ms, dims, partial, PANE_TIMING.get(pane.timing, "ON_TIME"), pane.index, self._dims
        )


class WriteWindowShards(beam.DoFn):
    """Formats and writes each combined window shard in one step.

    Bounded input gives ((start_ms, end_ms, shard), Groups); streaming gives (shard, Groups)
    in its Beam window with its pane. Writing where the records are made avoids a PCollection
    of record lists, whose per-field size sampling alone cost about a tenth of a run.
    """

    def __init__(self, config: JobConfig, windowed: bool) -> None:
        self._writer = AggregateFileWriter(config.output.path, config.output_format, config.schema.dimensions)
        self._dims = config.schema.dimensions
        self._shards = config.window_shards
        self._windowed = windowed

    def setup(self) -> None:
        self._writer.setup()

    def process(
        self,
        element: tuple[Any, Groups],
        window: Any = beam.DoFn.WindowParam,
        pane: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[str]:
        key, groups = element
        if self._windowed:
            start_ms, end_ms = window_bounds_ms(window)
            shard, timing, index = key, PANE_TIMING.get(pane.timing, "ON_TIME"), pane.index
        else:
            (start_ms, end_ms, shard), timing, index = key, "ON_TIME", 0
        records = shard_records(start_ms, end_ms, groups, timing, index, self._dims)
        if records:
            yield from self._writer.write_group(records, shard=shard_name(shard, self._shards))


class WindowedAggregate(beam.PTransform):
    """Streaming: Beam windows (assigned to partials), watermark trigger with optional
    processing-time early panes and late panes within the allowed lateness, accumulating.
    Output: session records, or (shard, Groups) per window shard and pane."""

    def __init__(self, config: JobConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, partials: beam.PCollection) -> beam.PCollection:
        config = self._config
        merging = config.window.merging
        merged = (
            partials
            | "Window"
            >> beam.WindowInto(
                beam_window_fn(config.window),
                trigger=build_trigger(config.early_firing_s, config.allowed_lateness_s),
                accumulation_mode=beam_trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=config.allowed_lateness_s,
            )
            # The window now lives in Beam's window; the key keeps what is left (dims or shard).
            | "KeyInWindow" >> beam.Map(lambda kv: (kv[0][2], kv[1]))
            | "Merge" >> beam.CombinePerKey(MergePartials() if merging else MergeGroups())
        )
        if merging:
            return merged | "ToRecords" >> beam.ParDo(_FormatPane(config.schema.dimensions))
        return merged


def build_pipeline(pipeline: beam.Pipeline, config: JobConfig, after_run: AfterRun | None = None) -> None:
    """Adds the analytics graph for `config` to `pipeline`. Stream readers hand what must wait for
    the run's success (resume positions, held acknowledgements) to `after_run`, which whoever
    runs the pipeline commits (see io_connectors.after_run.run_and_commit)."""
    batches = pipeline | "Read" >> source_from_uri(config.source, pipeline.options, config.input_format, after_run)
    outputs = add_analytics(batches, config)
    # Dead letters can also go to a Pub/Sub topic, whatever the source.
    publish_dead_letters(outputs["dead_letters"], pipeline.options)


def add_analytics(batches: beam.PCollection, config: JobConfig) -> dict[str, Any]:
    """The graph after the source (tests feed RawBatches here directly).

    Returns "aggregates" and "dead_letters": a tuple of PCollections (decode's and the overflow
    check's) whose elements are `dead_letter_lines` bytes, one per batch; `dead_letter_records`
    turns one back into dicts."""
    if config.dedupe_by:
        from transforms.dedupe import Dedupe

        batches = batches | "Dedupe" >> Dedupe(
            config.dedupe_by,
            config.schema.event_time_field,
            config.window,
            config.allowed_lateness_s,
            config.dedupe_max_ids,
            time_unit=config.schema.time_unit,
        )
    decoded = batches | "DecodeAndPreAggregate" >> beam.ParDo(
        DecodeAndPreAggregate(config, timestamped=config.streaming_path)
    ).with_outputs(DEAD_LETTER, main="partials")
    dims = config.schema.dimensions
    if config.streaming_path:
        aggregates = decoded.partials | "Aggregate" >> WindowedAggregate(config)
    else:
        aggregates = decoded.partials | "Aggregate" >> BoundedAggregate(config.window, dims, config.window_shards)
    if config.window.merging:
        aggregates | "WriteAggregates" >> WriteAggregates(
            config.output.path, config.output_format, dims, streaming=config.streaming_path
        )
    else:
        aggregates | "WriteAggregates" >> beam.ParDo(WriteWindowShards(config, windowed=config.streaming_path))
    overflows = (
        aggregates
        | "OverflowDeadLetters" >> beam.ParDo(OverflowDeadLetters(dims, windowed=config.streaming_path))
        # Dead letters are in the global window, wherever they come from.
        | "OverflowsInGlobalWindow" >> beam.WindowInto(GlobalWindows())
    )
    # Each written where it is made, without a Flatten: a local runner materializes a Flatten of
    # two stages' outputs whole, which would hold every dead letter of the run in memory.
    dead_letters = (decoded[DEAD_LETTER], overflows)
    dead_letters[0] | "WriteDeadLetters" >> WriteDeadLetters(config.dead_letter.path)
    dead_letters[1] | "WriteOverflowDeadLetters" >> WriteDeadLetters(config.dead_letter.path)
    return {"aggregates": aggregates, "dead_letters": dead_letters}
