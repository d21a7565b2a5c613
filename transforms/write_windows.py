"""Format and write each combined window shard in one step (non-merging windows)."""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam

from transforms.aggregate import Groups
from transforms.sinks import AggregateFileWriter, shard_name
from transforms.window_aggregate import PANE_TIMING, shard_records
from transforms.windowing import window_bounds_ms


class WriteWindowShards(beam.DoFn):
    """Formats and writes each combined window shard in one step.

    Bounded input gives ((start_ms, end_ms, shard), Groups); streaming (`windowed`) gives
    (shard, Groups) in its Beam window with its pane. Writing where the records are made avoids
    a PCollection of record lists, whose per-field size sampling alone cost about a tenth of a run.
    Files are named by shard (one of `shards`), so a re-run writes the same names.
    """

    def __init__(
        self, output_path: str, output_format: str, dimensions: tuple[str, ...], shards: int, windowed: bool
    ) -> None:
        self._writer = AggregateFileWriter(output_path, output_format, dimensions)
        self._dims = dimensions
        self._shards = shards
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
