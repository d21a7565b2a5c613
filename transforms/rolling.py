"""File rolling: few, well-sized aggregate files, bounded per (partition x shard) per roll.

A query engine pays per file (a listing entry, an open, a footer read), so aggregates are not
written one file per window or session but gathered per dt/hour partition and window shard:

- Bounded runs write each partition's aggregates, every window and session of it, in at most
  `shards` files. Fixed and sliding windows get there without a second shuffle: they are
  combined per (hour, shard) already (transforms.window_aggregate.BoundedAggregate). Sessions,
  whose windows are only known after merging, are grouped per (hour, shard) once merged.
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
from transforms.window_aggregate import PANE_TIMING, partition_hour
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


class KeyByRoll(beam.DoFn):
    """Keys each pane's window shard, or each session record, by (hour, shard) for the roll.

    A window shard (shard, Groups) leaves as ((hour, shard), (start_ms, end_ms, pane, pane_index,
    Groups)): its Beam window and pane go into the value, which the global window of the roll
    would otherwise lose. A record keeps its own window and pane and is sharded by its dimensions,
    as window shards are."""

    def __init__(self, dimensions: tuple[str, ...], shards: int) -> None:
        self._dims = dimensions
        self._shards = shards

    def process(
        self,
        element: Any,  # noqa: ANN401 - a window shard or a record
        window: Any = beam.DoFn.WindowParam,
        pane: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[tuple[tuple[str, int], Any]]:
        if isinstance(element, dict):
            shard = shard_of(tuple(element[d] for d in self._dims), self._shards)
            yield (element["window_start"][:13], shard), element
            return
        shard, groups = element
        start_ms, end_ms = window_bounds_ms(window)
        timing = PANE_TIMING.get(pane.timing, "ON_TIME")
        yield (partition_hour(start_ms), shard), (start_ms, end_ms, timing, pane.index, groups)


class WriteRolledAggregates(beam.PTransform):
    """Writes the aggregates of transforms.window_aggregate in rolled files (see the module).

    `windowed`: the input is in Beam windows and panes (the streaming path); `merging`: it is
    session records; else bounded hour shards. `roll_s` applies to `windowed` input only."""

    def __init__(
        self,
        output_path: str,
        output_format: str,
        dimensions: tuple[str, ...],
        shards: int,
        *,
        windowed: bool,
        merging: bool,
        roll_s: int | None,
        run_key: str = "",
    ) -> None:
        super().__init__()
        self._args = (output_path, output_format, tuple(dimensions), shards, run_key)
        self._windowed = windowed
        self._merging = merging
        self._roll_s = roll_s

    def expand(self, aggregates: beam.PCollection) -> beam.PCollection:
        if not self._windowed and not self._merging:
            # Already one element per (hour, shard): write where the records are made.
            return aggregates | "WriteFiles" >> beam.ParDo(WriteRolls(*self._args, grouped=False, content_named=False))
        _, _, dims, shards, _ = self._args
        keyed = aggregates | "KeyByRoll" >> beam.ParDo(KeyByRoll(dims, shards))
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
            | "WriteFiles" >> beam.ParDo(WriteRolls(*self._args, grouped=True, content_named=not rolls_once))
        )
