"""File rolling: few, well-sized aggregate files, bounded per (partition x shard) per roll.

A query engine pays per file (a listing entry, an open, a footer read), so aggregates are not
written one file per window or session but gathered per dt/hour partition and window shard:

- Bounded runs write each partition's aggregates, every window and session of it, in at most
  `shards` files: window shards and session records are encoded into chunks of file bytes
  (transforms/file_chunks.py) and grouped per (hour, shard), one file per partition of a group.
- Streaming runs gather the panes that fire within `roll_s` seconds of processing time into the
  same files, as Dataflow's Pub/Sub-to-GCS templates do with a write window and a shard count:
  each (hour, shard) key fires `roll_s` seconds after its first pane of a roll, and once more
  when the input ends (drain). A runner without a processing-time clock (the FnApiRunner behind
  the local DirectRunner) takes `roll_s=None`: one roll for the whole run.

Names are deterministic: a bounded run writes `part-<shard>` per partition, so a re-run writes
the same names and bytes; a streaming roll's files are named by their window range, the digest
of their bytes and the shard, so a retried bundle rewrites the same file and two rolls of one
key never overwrite each other.
"""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.transforms import trigger as beam_trigger
from apache_beam.transforms.window import GlobalWindows

from transforms.aggregate import shard_of
from transforms.file_chunks import Chunk, chunks_of
from transforms.window_aggregate import PANE_TIMING, partition_hour, shard_records
from transforms.windowing import window_bounds_ms
from transforms.write_windows import WriteRolls


def roll_trigger(roll_s: int | None) -> beam_trigger.TriggerFn:
    """Fire `roll_s` seconds of processing time after a key's first element of a roll, and at the
    end of the input; None: only at the end of the input."""
    if roll_s is None:
        # The same firing as the default trigger, which Beam refuses on an unbounded input in the
        # global window (a local runner's stream read, which ends when the read ends).
        return beam_trigger.AfterWatermark()
    return beam_trigger.AfterWatermark(early=beam_trigger.AfterProcessingTime(roll_s))


class EncodeForRoll(beam.DoFn):
    """Encodes each window shard (a pane's, streaming) or session record into chunks
    (transforms/file_chunks.py) keyed by (hour, shard) for the roll.

    Takes ((start_ms, end_ms, shard), Groups) (bounded), (shard, Groups) in a Beam window and pane
    (`windowed`, streaming) or an aggregate record dict (sessions, sharded by their dimensions as
    window shards are). The window and pane go into the chunk, which the roll's global window
    would otherwise lose."""

    def __init__(self, output_format: str, dimensions: tuple[str, ...], shards: int, windowed: bool) -> None:
        self._format = output_format
        self._dims = dimensions
        self._shards = shards
        self._windowed = windowed

    def process(
        self,
        element: Any,  # noqa: ANN401 - a window shard or a record
        window: Any = beam.DoFn.WindowParam,
        pane: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[tuple[tuple[str, int], Chunk]]:
        if isinstance(element, dict):
            shard = shard_of(tuple(element[d] for d in self._dims), self._shards)
            hour, records = element["window_start"][:13], [element]
        else:
            if self._windowed:
                shard, groups = element
                start_ms, end_ms = window_bounds_ms(window)
                timing, index = PANE_TIMING.get(pane.timing, "ON_TIME"), pane.index
            else:
                (start_ms, end_ms, shard), groups = element
                timing, index = "ON_TIME", 0
            hour, records = partition_hour(start_ms), shard_records(start_ms, end_ms, groups, timing, index, self._dims)
        for chunk in chunks_of(records, self._format, self._dims):
            yield (hour, shard), chunk


class WriteRolledAggregates(beam.PTransform):
    """Writes the aggregates of transforms.window_aggregate in rolled files (see the module).

    `windowed`: the input is in Beam windows and panes (the streaming path), else bounded window
    shards or session records. `roll_s` applies to `windowed` input only."""

    def __init__(
        self,
        output_path: str,
        output_format: str,
        dimensions: tuple[str, ...],
        shards: int,
        *,
        windowed: bool,
        roll_s: int | None,
        run_key: str = "",
    ) -> None:
        super().__init__()
        self._args = (output_path, output_format, tuple(dimensions), shards, run_key)
        self._windowed = windowed
        self._roll_s = roll_s

    def expand(self, aggregates: beam.PCollection) -> beam.PCollection:
        _, output_format, dims, shards, _ = self._args
        keyed = aggregates | "EncodeForRoll" >> beam.ParDo(EncodeForRoll(output_format, dims, shards, self._windowed))
        rolls_once = not self._windowed or self._roll_s is None
        if self._windowed:
            keyed = keyed | "RollWindow" >> beam.WindowInto(
                GlobalWindows(),
                trigger=roll_trigger(self._roll_s),
                accumulation_mode=beam_trigger.AccumulationMode.DISCARDING,
            )
        return (
            keyed
            | "GroupByRoll" >> beam.GroupByKey()
            | "WriteFiles" >> beam.ParDo(WriteRolls(*self._args, content_named=not rolls_once))
        )
