"""Format and write one roll of aggregates: the files of one (dt/hour, shard) key."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import apache_beam as beam

from transforms.sinks import AggregateFileWriter, shard_name
from transforms.window_aggregate import hour_records, shard_records

# What a roll groups: a streaming window shard's pane, (start_ms, end_ms, pane, pane_index,
# Groups keyed by dims), or one aggregate record (sessions).
Chunk = tuple | dict


def chunk_records(chunks: Iterable[Chunk], dimensions: tuple[str, ...]) -> list[dict[str, Any]]:
    """The aggregate records of a roll's chunks."""
    records: list[dict[str, Any]] = []
    for chunk in chunks:
        if isinstance(chunk, dict):
            records.append(chunk)
        else:
            start_ms, end_ms, pane, pane_index, groups = chunk
            records += shard_records(start_ms, end_ms, groups, pane, pane_index, dimensions)
    return records


class WriteRolls(beam.DoFn):
    """Formats and writes each ((hour, shard), value) element as one file per partition directory.

    `value` is a bounded hour shard's Groups keyed by (start_ms, end_ms, dims) (`grouped` False),
    or the chunks a GroupByKey gathered for one roll (`grouped` True). Writing where the records
    are made avoids a PCollection of record lists, whose per-field size sampling alone cost about
    a tenth of a run. Files are named by shard (one of `shards`), prefixed by `run_key` when one is
    given, and with `content_named` also by their window range and digest, for keys that roll more
    than once (see transforms/rolling.py).
    """

    def __init__(
        self,
        output_path: str,
        output_format: str,
        dimensions: tuple[str, ...],
        shards: int,
        run_key: str,
        grouped: bool,
        content_named: bool,
    ) -> None:
        self._writer = AggregateFileWriter(output_path, output_format, dimensions)
        self._dims = dimensions
        self._shards = shards
        # A series of --resume runs writes the same hours in turn: each run's files carry the key of
        # where it started reading, so a later run never replaces an earlier one's, while a re-run
        # after a failure (same start) replaces what the failed run wrote.
        self._prefix = f"r{run_key}-" if run_key else ""
        self._grouped = grouped
        self._content_named = content_named

    def setup(self) -> None:
        self._writer.setup()

    def process(self, element: tuple[tuple[str, int], Any]) -> Iterator[str]:
        (_, shard), value = element
        name = self._prefix + shard_name(shard, self._shards)
        if self._grouped:
            records = chunk_records(value, self._dims)
            if records:
                yield from self._writer.write_group(records, name, self._content_named)
            return
        # One partition (region) at a time: an hour shard's records all at once would hold several
        # times the objects, which every full garbage collection meanwhile walks.
        for windows in self._by_region(value):
            yield from self._writer.write_group(hour_records(windows, self._dims), name, self._content_named)

    def _by_region(self, windows: dict) -> Iterator[dict]:
        if "region" not in self._dims:
            yield windows
            return
        at = self._dims.index("region")
        regions: dict[str, dict] = {}
        for window, groups in windows.items():
            for dims, part in groups.items():
                regions.setdefault(dims[at], {}).setdefault(window, {})[dims] = part
        for region in sorted(regions):
            yield regions.pop(region)
