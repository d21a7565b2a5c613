"""`--dedupe_by FIELD`: drop records whose id was already seen in the same event-time window.

Streams deliver at least once (Pub/Sub redelivers unacked messages, a Kinesis producer re-puts
a batch after a timeout). Dedupe runs on the raw batches, before decoding:

    RawBatch -> split by (crc32(id) % shards, event-time bucket) -> ((shard, bucket), sub-batch)
             -> stateful DoFn per key: the set of ids seen, cleared by an event-time timer once
                the bucket's windows are closed (window end + allowed lateness)
             -> RawBatch of the records not seen before

Memory: one Python str per remembered id, about 100 bytes for a 36-character id (the set
entry, the str object and its characters), per (shard, bucket) key that is still open.
`max_ids` bounds each key: past it, new ids are no longer remembered and pass through
(counted in `analytics/dedupe_ids_not_remembered`, and logged once per key), so an overflow
can count a later duplicate twice but never drops a record. Records whose id or time cannot
be read pass through untouched: the decoder sends them to the dead letters.
"""

from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from typing import Any, Iterator

import apache_beam as beam
import orjson
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from io_connectors.metrics import NAMESPACE
from io_connectors.records import RawBatch
from transforms.decode import DecodeError, parse_event_time
from transforms.windowing import WindowSpec

LOG = logging.getLogger(__name__)

DEFAULT_SHARDS = 4
PASS_THROUGH = -1  # bucket of records whose id or time cannot be read


def stable_shard(record_id: str, shards: int) -> int:
    """crc32, not hash(): Python salts str hashes per process, and workers must agree."""
    return zlib.crc32(record_id.encode("utf-8")) % shards


def bucket_span_ms(window: WindowSpec) -> tuple[int, int]:
    """(bucket size, extra time after a bucket ends during which its events' windows stay open)."""
    if window.kind == "fixed":
        return window.size_ms, 0
    if window.kind == "sliding":
        return window.period_ms, window.size_ms
    return window.gap_ms, window.gap_ms  # sessions: a duplicate can only extend a session by the gap


class _SplitById(beam.DoFn):
    """RawBatch -> ((shard, bucket), RawBatch) sub-batches; unreadable records under PASS_THROUGH."""

    def __init__(self, id_field: str, time_field: str, window: WindowSpec, shards: int, time_unit: str = "ms") -> None:
        self._id_field = id_field
        self._time_field = time_field
        self._time_unit = time_unit
        self._bucket_ms = bucket_span_ms(window)[0]
        self._shards = shards

    def _key(self, raw: Any) -> tuple[int, int, str]:
        if isinstance(raw, dict):
            record = raw
        elif isinstance(raw, (bytes, bytearray, memoryview)):
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return 0, PASS_THROUGH, ""
        else:
            return 0, PASS_THROUGH, ""  # a ReadFailure or an unknown type: the decoder reports it
        if not isinstance(record, dict):
            return 0, PASS_THROUGH, ""
        record_id = record.get(self._id_field)
        if not isinstance(record_id, (str, int)) or isinstance(record_id, bool):
            return 0, PASS_THROUGH, ""
        try:
            time_ms = parse_event_time(record.get(self._time_field), self._time_field, self._time_unit)
        except DecodeError:
            return 0, PASS_THROUGH, ""
        record_id = str(record_id)
        return stable_shard(record_id, self._shards), time_ms - time_ms % self._bucket_ms, record_id

    def process(self, batch: Any) -> Iterator[tuple[tuple[int, int], tuple[Any, list[str]]]]:
        if not isinstance(batch, RawBatch):
            yield (0, PASS_THROUGH), (batch, [])
            return
        parts: dict[tuple[int, int], tuple[list[int], list[str]]] = defaultdict(lambda: ([], []))
        for index, raw in enumerate(batch.records):
            shard, bucket, record_id = self._key(raw)
            indexes, ids = parts[(shard, bucket)]
            indexes.append(index)
            ids.append(record_id)
        if len(parts) == 1 and next(iter(parts))[1] == PASS_THROUGH:
            yield next(iter(parts)), (batch, [])
            return
        for key, (indexes, ids) in parts.items():
            yield key, (_subset(batch, indexes), ids)


def _subset(batch: RawBatch, indexes: list[int]) -> RawBatch:
    """The records at `indexes`, each keeping its source position (and arrival time)."""
    if batch.positions is not None:
        positions = [batch.positions[i] for i in indexes]
    else:
        positions = [str(batch.first_offset + i) for i in indexes]
    arrival = [batch.arrival_ms[i] for i in indexes] if batch.arrival_ms is not None else None
    return RawBatch(batch.source, [batch.records[i] for i in indexes], positions, 0, arrival)


class _DropSeen(beam.DoFn):
    """Per (shard, bucket): remembers ids; an event-time timer forgets them when the bucket closes."""

    SEEN = ReadModifyWriteStateSpec("seen", coders.PickleCoder())
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, id_field: str, window: WindowSpec, allowed_lateness_ms: int, max_ids: int) -> None:
        self._id_field = id_field
        self._bucket_ms, self._span_ms = bucket_span_ms(window)
        self._lateness_ms = allowed_lateness_ms
        self._max_ids = max_ids
        self._dropped = Metrics.counter(NAMESPACE, "duplicates_dropped")
        self._overflow = Metrics.counter(NAMESPACE, "dedupe_ids_not_remembered")

    def process(
        self,
        element: tuple[tuple[int, int], tuple[RawBatch, list[str]]],
        seen_state: Any = beam.DoFn.StateParam(SEEN),
        expiry: Any = beam.DoFn.TimerParam(EXPIRY),
    ) -> Iterator[RawBatch]:
        (shard, bucket), (batch, ids) = element
        if bucket == PASS_THROUGH:
            yield batch
            return
        seen: set[str] | None = seen_state.read()
        if seen is None:
            seen = set()
            # Forget the ids once every window an event of this bucket belongs to is closed.
            expiry.set(Timestamp(micros=(bucket + self._bucket_ms + self._span_ms + self._lateness_ms) * 1000))
        keep: list[int] = []
        overflow = 0
        for index, record_id in enumerate(ids):
            if record_id in seen:
                continue
            if len(seen) < self._max_ids:
                seen.add(record_id)
            else:
                overflow += 1
            keep.append(index)
        dropped = len(batch.records) - len(keep)
        if dropped:
            self._dropped.inc(dropped)
        if overflow:
            self._overflow.inc(overflow)
            LOG.warning(
                "dedupe: shard %d, bucket %d holds --dedupe_max_ids=%d ids; %d newer ids are not remembered "
                "(their duplicates would be counted). Raise --dedupe_max_ids if memory allows.",
                shard,
                bucket,
                self._max_ids,
                overflow,
            )
        seen_state.write(seen)
        if keep:
            yield batch if len(keep) == len(batch.records) else _subset(batch, keep)

    @on_timer(EXPIRY)
    def expire(self, seen_state: Any = beam.DoFn.StateParam(SEEN)) -> Iterator[RawBatch]:
        seen_state.clear()
        return iter(())


class Dedupe(beam.PTransform):
    """RawBatches in, RawBatches out, without the records whose `id_field` was already seen in
    the same event-time window (see the module docstring for memory and the overflow rule)."""

    def __init__(
        self,
        id_field: str,
        time_field: str,
        window: WindowSpec,
        allowed_lateness_s: float = 0.0,
        max_ids: int = 1_000_000,
        shards: int = DEFAULT_SHARDS,
        time_unit: str = "ms",
    ) -> None:
        super().__init__()
        if max_ids < 1:
            raise ValueError(f"max_ids {max_ids} must be at least 1")
        self._split = _SplitById(id_field, time_field, window, shards, time_unit)
        self._drop = _DropSeen(id_field, window, int(allowed_lateness_s * 1000), max_ids)

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | "SplitById" >> beam.ParDo(self._split) | "DropSeen" >> beam.ParDo(self._drop)
