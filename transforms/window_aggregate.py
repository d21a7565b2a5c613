"""Combine pre-aggregated partials per window: the bounded fast path and Beam's windowing.

Both give the same records (see BoundedAggregate). Non-merging windows leave as window shards
of groups: bounded, ((start_ms, end_ms, shard), Groups keyed by dims); streaming, (shard,
Groups) in a Beam window and pane. Sessions leave as aggregate records. transforms.rolling
writes them all.
"""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger as beam_trigger

from io_connectors.metrics import NAMESPACE
from transforms.aggregate import MergeGroups, MergePartials, MergeSessions, Partial
from transforms.windowing import WindowSpec, beam_window_fn, build_trigger, iso_utc, window_bounds_ms

# Beam's PaneInfo timing -> the record's `pane`.
PANE_TIMING = {0: "EARLY", 1: "ON_TIME", 2: "LATE"}


def to_record(
    start_ms: int,
    end_ms: int,
    dims: tuple,
    partial: Partial,
    pane: str,
    pane_index: int,
    dimensions: tuple[str, ...],
) -> dict[str, Any]:
    """One aggregate record (the output contract) of one group's partial."""
    record: dict[str, Any] = {"window_start": iso_utc(start_ms), "window_end": iso_utc(end_ms)}
    record.update(zip(dimensions, dims, strict=True))
    record.update(partial.metrics())
    record["pane"] = pane
    record["pane_index"] = pane_index
    return record


def shard_records(
    start_ms: int, end_ms: int, groups: dict, pane: str, pane_index: int, dimensions: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The records of one window shard's groups, all in the same window and pane."""
    return [to_record(start_ms, end_ms, dims, part, pane, pane_index, dimensions) for dims, part in groups.items()]


def partition_hour(start_ms: int) -> str:
    """`YYYY-MM-DDTHH` of a window's start: the dt and hour of its partition directory."""
    return iso_utc(start_ms)[:13]


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

    def __init__(self, window: WindowSpec, dimensions: tuple[str, ...]) -> None:
        super().__init__()
        self._window = window
        self._dims = dimensions

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
        # Combined per window shard, not per (hour, shard): an hour's Groups held as one accumulator
        # are a large, long-lived working set that every full garbage collection walks.
        merged = partials | "Merge" >> beam.CombinePerKey(MergeGroups())
        _ = merged | "Windows" >> beam.Map(lambda kv: kv[0][:2]) | _CountWindows()
        return merged


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


class WindowedAggregate(beam.PTransform):
    """Streaming: Beam windows (assigned to partials), watermark trigger with optional
    processing-time early panes (`early_firing_s`) and late panes within `allowed_lateness_s`,
    accumulating. Output: session records, or (shard, Groups) per window shard and pane."""

    def __init__(
        self,
        window: WindowSpec,
        dimensions: tuple[str, ...],
        early_firing_s: int | None,
        allowed_lateness_s: float,
    ) -> None:
        super().__init__()
        self._window = window
        self._dims = dimensions
        self._early_firing_s = early_firing_s
        self._allowed_lateness_s = allowed_lateness_s

    def expand(self, partials: beam.PCollection) -> beam.PCollection:
        merging = self._window.merging
        merged = (
            partials
            | "Window"
            >> beam.WindowInto(
                beam_window_fn(self._window),
                trigger=build_trigger(self._early_firing_s, self._allowed_lateness_s),
                accumulation_mode=beam_trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=self._allowed_lateness_s,
            )
            # The window now lives in Beam's window; the key keeps what is left (dims or shard).
            | "KeyInWindow" >> beam.Map(lambda kv: (kv[0][2], kv[1]))
            | "Merge" >> beam.CombinePerKey(MergePartials() if merging else MergeGroups())
        )
        if merging:
            return merged | "ToRecords" >> beam.ParDo(_FormatPane(self._dims))
        return merged
