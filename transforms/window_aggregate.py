"""Combine pre-aggregated partials per window: the bounded fast path and Beam's windowing.

Both give the same records (see BoundedAggregate). Non-merging windows leave as shards of
groups: bounded, one element per (dt/hour, shard), ((hour, shard), WindowGroups: {(start_ms,
end_ms): Groups}); streaming, (shard, Groups keyed by dims) in a Beam window and pane.
Sessions leave as aggregate records. transforms.rolling writes them all.
"""

from __future__ import annotations

import pickle
import typing
from typing import Any, Iterable, Iterator

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


def hour_records(windows: dict, dimensions: tuple[str, ...]) -> list[dict[str, Any]]:
    """The ON_TIME records of a bounded hour shard's WindowGroups."""
    return [
        record
        for (start_ms, end_ms), groups in windows.items()
        for record in shard_records(start_ms, end_ms, groups, "ON_TIME", 0, dimensions)
    ]


def partition_hour(start_ms: int) -> str:
    """`YYYY-MM-DDTHH` of a window's start: the dt and hour of its partition directory."""
    return iso_utc(start_ms)[:13]


class WindowGroups(dict):
    """{(start_ms, end_ms): Groups} of one dt/hour and shard: the bounded combine's accumulator."""

    __slots__ = ()


class WindowGroupsCoder(beam.coders.Coder):
    """WindowGroups pickled (each window's Groups in one flat call, see Groups.__reduce__), with a
    size estimate that encodes nothing: Beam samples the size of the first ten elements of every
    PCollection by encoding them, which for the few large (hour, shard) elements would pickle every
    Partial again for each PCollection they pass."""

    def encode(self, value: WindowGroups) -> bytes:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> WindowGroups:
        return pickle.loads(encoded)

    def estimate_size(self, value: WindowGroups) -> int:
        return 64 + ESTIMATED_GROUP_BYTES * sum(len(groups) for groups in value.values())

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self) -> type:
        return WindowGroups


# A small Partial's pickled size (most are small): counts, sums and a few values and id hashes.
ESTIMATED_GROUP_BYTES = 160
beam.coders.registry.register_coder(WindowGroups, WindowGroupsCoder)
HourGroups = typing.Tuple[typing.Tuple[str, int], WindowGroups]  # noqa: UP006 - Beam's type hints want typing


class MergeWindowGroups(beam.CombineFn):
    """Merges WindowGroups window by window with MergeGroups; inputs are never modified."""

    def __init__(self) -> None:
        self._groups = MergeGroups()

    def create_accumulator(self) -> WindowGroups:
        return WindowGroups()

    def add_input(self, accumulator: WindowGroups, element: dict) -> WindowGroups:
        for window, groups in element.items():
            mine = accumulator.get(window)
            if mine is None:
                mine = accumulator[window] = self._groups.create_accumulator()
            self._groups.add_input(mine, groups)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[WindowGroups]) -> WindowGroups:
        merged = WindowGroups()
        for accumulator in accumulators:
            self.add_input(merged, accumulator)
        return merged

    def compact(self, accumulator: WindowGroups) -> WindowGroups:
        for groups in accumulator.values():
            self._groups.compact(groups)
        return accumulator

    def extract_output(self, accumulator: WindowGroups) -> WindowGroups:
        return accumulator

    def get_accumulator_coder(self) -> beam.coders.Coder:
        return WindowGroupsCoder()


def _by_hour(element: tuple[tuple[int, int, int], dict]) -> tuple[tuple[str, int], WindowGroups]:
    # The window moves from the key into the value, so that one combine per (hour, shard) gives
    # every file of a partition's shard at once, with no second shuffle before writing.
    (start_ms, end_ms, shard), groups = element
    return (partition_hour(start_ms), shard), WindowGroups({(start_ms, end_ms): groups})


class _CountWindows(beam.PTransform):
    """Counts distinct (start, end) windows into the summary's `windows_written` counter."""

    def expand(self, windows: beam.PCollection) -> beam.PCollection:
        counter = Metrics.counter(NAMESPACE, "windows_written")
        return windows | "Distinct" >> beam.Distinct() | "Count" >> beam.Map(lambda _: counter.inc())


class BoundedAggregate(beam.PTransform):
    """Bounded input: every event is on time, so combine with the window in the key in the
    global window (5x faster on the FnApiRunner than a windowed GroupByKey) and emit one
    ON_TIME pane per group: the same result Beam's windowing gives for bounded data.

    Output: for sessions, one record per session; otherwise one ((hour, shard), WindowGroups)
    element per dt/hour and shard (see partition_hour)."""

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
        merged = (
            partials
            | "KeyByHour" >> beam.Map(_by_hour).with_output_types(HourGroups)
            | "Merge" >> beam.CombinePerKey(MergeWindowGroups()).with_output_types(HourGroups)
        )
        _ = merged | "Windows" >> beam.FlatMap(lambda kv: list(kv[1])) | _CountWindows()
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
