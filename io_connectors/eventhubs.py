"""Native Python Event Hubs reader over the Kafka-protocol endpoint.

Event Hubs namespaces (Standard tier and up) speak the Kafka protocol on
NAMESPACE.servicebus.windows.net:9093; confluent-kafka talks to it directly, so no Java
expansion service is involved. With a bootstrap override (and plaintext) the same reader reads
any Kafka-protocol broker: it is also a native Python Kafka source for Beam. The writer is
io_connectors.eventhubs_writer.

Reader shape (one splittable DoFn, restriction = offset range per partition):
  Impulse -> _ListPartitions (metadata, start offsets) -> _ReadPartition (SDF)
Partition discovery lives inside the reading stage: one element per partition id below
`max_partitions`; ids that do not exist yet re-list the hub's metadata on each resume and
start reading (from earliest) once the partition appears. A second discovery stage would not
work on the DirectRunner, which runs an SDF stage to completion before the next one starts.
Consumers use assign + seek, never group subscription: the runner's checkpoint (the residual
restriction) is the position of record. Committing offsets to the consumer group on bundle
finalization is optional and only for lag dashboards. With a position store (--resume on the
DirectRunner) each partition starts at the next offset stored by the last successful run
(io_connectors.positions), and every claimed offset is recorded in the run's AfterRun.

Bounds, the record budget, the claim loop and the idle watermark are the shared ones of
io_connectors.read_core.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Iterator, NamedTuple, Sequence

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from io_connectors import positions
from io_connectors.after_run import AfterRun
from io_connectors.eventhubs_client import (
    EventHubsError,
    EventHubsTarget,
    NewestTimes,
    client_config,
    explain,
    list_partitions,
    parse_target,
    start_offsets,
)
from io_connectors.eventhubs_restriction import OFFSET_INFINITY, PartitionEnd, PartitionTracker, remaining_size
from io_connectors.read_core import (
    Clock,
    IdleWatermarkEstimator,
    SourceMetrics,
    StreamReadFn,
    StreamReadSettings,
    claim_within_budget,
    unbounded,
)
from io_connectors.records import RawBatch
from io_connectors.uri import SourceSpec, UriError

LOG = logging.getLogger(__name__)

__all__ = [
    "EventHubsBatch",
    "EventHubsError",
    "EventHubsRecord",
    "EventHubsTarget",
    "HeldOffsets",
    "ReadFromEventHubs",
    "ReadRawBatches",
    "ReadSettings",
    "check_uri",
    "stored_offsets",
    "to_raw_batch",
]


class EventHubsRecord(NamedTuple):
    partition: int
    offset: int
    timestamp_ms: int  # enqueued time (Kafka log-append time on Event Hubs)
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class EventHubsBatch(NamedTuple):
    """Records of one partition, column-wise, in offset order."""

    hub: str
    partition: int
    offsets: list[int]
    timestamps_ms: list[int]
    keys: list[bytes | None]
    values: list[bytes]
    headers: list[tuple[tuple[str, bytes], ...]]

    def __len__(self) -> int:  # type: ignore[override] - number of records, not of fields
        return len(self.offsets)

    def records(self) -> Iterator[EventHubsRecord]:
        for i, offset in enumerate(self.offsets):
            yield EventHubsRecord(self.partition, offset, self.timestamps_ms[i], self.keys[i], self.values[i],
                                  self.headers[i])


@dataclass(frozen=True, kw_only=True)
class ReadSettings(StreamReadSettings):
    """Everything the reader needs besides the target; fixed at construction, picklable.

    Bounds, position store, idle watermark and read id are StreamReadSettings'."""

    start_position: str = "earliest"
    start_timestamp_ms: int | None = None
    commit_offsets: bool = False
    # Commit the consumer group's offsets when the whole run has succeeded (through the run's
    # AfterRun), not on bundle finalization: the local in-memory DirectRunner finalizes before
    # it writes windows.
    commit_after_run: bool = False
    max_partitions: int = 32
    batch_size: int = 5000
    max_call_s: float = 1.0  # short process() calls keep bundles (and their finalization) frequent
    poll_s: float = 0.2  # one consume() wait
    caught_up_resume_s: float = 0.2  # resume delay once a partition has caught up
    discovery_interval_s: float = 2.0  # metadata re-list period for partitions not there yet

    def validate(self) -> None:
        problems = []
        if self.start_position == "timestamp" and self.start_timestamp_ms is None:
            problems.append("--eventhubs_start_position=timestamp needs --eventhubs_start_timestamp")
        if self.max_partitions < 1:
            problems.append("--eventhubs_max_partitions must be at least 1")
        if self.batch_size < 1:
            problems.append("--eventhubs_batch_size must be at least 1")
        problems += self.bound_problems()
        if problems:
            raise UriError("; ".join(problems) + ".")


class PartitionRef(NamedTuple):
    """One partition to read; the element of the reading SDF."""

    partition: int
    start_offset: int
    # Skip records enqueued before this (timestamp start); also the partition's first watermark.
    min_timestamp_ms: int | None
    listed: bool = True  # existed when the read started (partitions are never removed)


def _consumer_config(target: EventHubsTarget) -> dict[str, Any]:
    return {
        **client_config(target),
        "group.id": target.consumer_group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        # A position below the log start (retention) resets to the earliest retained event;
        # a position past the end (broker lost data) is caught by the rewind check below.
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    }


def stored_offsets(path: str | None) -> dict[int, int]:
    """--resume: the next offset of each partition, as the last successful run stored it."""
    if path is None:
        return {}
    offsets = {}
    for partition, offset in positions.load_positions(path).items():
        if not (partition.isdigit() and offset.isdigit()):
            raise positions.PositionStoreError(
                f"the position store {path} holds {offset!r} for partition {partition!r}, which is not a "
                "partition id and offset; delete it to read from --eventhubs_start_position, "
                "or run without --resume."
            )
        offsets[int(partition)] = int(offset)
    return offsets


def plan_partitions(existing: Sequence[int], resolved: dict[int, int], stored: dict[int, int],
                    max_partitions: int, min_timestamp_ms: int | None) -> list[PartitionRef]:
    """One PartitionRef per partition id below max_partitions (and per existing partition).

    A stored offset (--resume) wins over the resolved start position. Ids that do not exist
    yet start at 0: when such a partition appears, all of it is new."""
    refs = []
    for partition in range(max(max_partitions, len(existing))):
        listed = partition in existing
        if partition in stored:
            start = stored[partition]
        else:
            start = resolved[partition] if listed else 0
        refs.append(PartitionRef(partition, start, min_timestamp_ms if listed else None, listed))
    return refs


# Partition ids per (endpoint, hub), re-listed at most every discovery interval per process.
_METADATA_LOCK = threading.Lock()
_METADATA: dict[tuple[str, str], tuple[float, frozenset[int]]] = {}


class _ListPartitions(beam.DoFn):
    """Impulse -> one PartitionRef per partition id below max_partitions, start resolved."""

    def __init__(self, target: EventHubsTarget, settings: ReadSettings) -> None:
        self._target = target
        self._settings = settings

    def setup(self) -> None:
        from confluent_kafka import Consumer

        self._consumer = Consumer(_consumer_config(self._target))

    def process(self, _impulse: Any) -> Iterator[PartitionRef]:
        settings = self._settings
        existing = list_partitions(self._consumer, self._target)
        stored = stored_offsets(settings.position_store)
        # Resolve the start position only where no stored offset applies ("latest" costs a request).
        fresh = [p for p in existing if p not in stored]
        resolved = start_offsets(self._consumer, self._target, fresh, settings.start_position,
                                 settings.start_timestamp_ms) if fresh else {}
        min_ts = settings.start_timestamp_ms if settings.start_position == "timestamp" else None
        yield from plan_partitions(existing, resolved, stored, settings.max_partitions, min_ts)

    def teardown(self) -> None:
        consumer = getattr(self, "_consumer", None)
        if consumer is not None:
            consumer.close()


_FATAL_CODES = {"_UNKNOWN_TOPIC", "UNKNOWN_TOPIC_OR_PART", "TOPIC_AUTHORIZATION_FAILED", "_AUTHENTICATION",
                "SASL_AUTHENTICATION_FAILED", "GROUP_AUTHORIZATION_FAILED"}

# The AfterRun key of the consumer-group offsets held until the run succeeds.
HELD_OFFSETS = "eventhubs-offsets"


def _finish(tracker: Any) -> None:
    """End this restriction without a residual (bounded read over). Reads the end afresh:
    the runner may have split the restriction since the call began."""
    tracker.try_claim(tracker.current_restriction().stop)


class _ReadPartition(StreamReadFn):
    """Reads one partition from its restriction's start; emits EventHubsBatch elements.

    Restriction: OffsetRange(start, OFFSET_INFINITY), sized from the partition's end offset
    (a client made lazily where sizing runs). Watermark: the newest enqueued time read, from
    the start timestamp on, advancing on a caught-up quiet partition (read_core)."""

    _settings: ReadSettings

    def __init__(self, target: EventHubsTarget, settings: ReadSettings, after_run: AfterRun | None = None,
                 clock: Clock = time.time) -> None:
        super().__init__(settings, clock)
        self._target = target
        self._after_run = after_run
        self._sizer: Any = None
        self._ends: dict[int, tuple[float, int | None]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for worker_only in ("_consumer", "_budget", "_metrics", "_newest"):
            state.pop(worker_only, None)
        state.update(_sizer=None, _ends={})
        return state

    # ---- restriction and watermark
    def initial_restriction(self, ref: PartitionRef) -> OffsetRange:
        return OffsetRange(ref.start_offset, OFFSET_INFINITY)

    def create_tracker(self, restriction: OffsetRange) -> PartitionTracker:
        return PartitionTracker(restriction)

    def restriction_size(self, ref: PartitionRef, restriction: OffsetRange) -> float:
        return remaining_size(restriction, self._end_offset(ref.partition))

    def initial_watermark_ms(self, ref: PartitionRef) -> int | None:
        return ref.min_timestamp_ms

    def _end_offset(self, partition: int) -> int | None:
        cached = self._ends.get(partition)
        if cached and time.monotonic() - cached[0] < 10:
            return cached[1]
        end: int | None = None
        try:
            from confluent_kafka import Consumer, KafkaException, TopicPartition

            if self._sizer is None:
                self._sizer = Consumer(_consumer_config(replace(self._target, connect_timeout_s=2.0)))
            try:
                end = self._sizer.get_watermark_offsets(TopicPartition(self._target.hub, partition), timeout=2)[1]
            except KafkaException:
                end = None  # sizing is advisory; the read itself reports real errors
        except EventHubsError:
            end = None
        self._ends[partition] = (time.monotonic(), end)
        return end

    # ---- DoFn
    def setup(self) -> None:
        from confluent_kafka import Consumer

        super().setup()
        self._consumer = Consumer(_consumer_config(self._target))
        self._metrics = SourceMetrics(self._clock)
        self._newest = NewestTimes(lambda: Consumer({**_consumer_config(self._target), "fetch.wait.max.ms": 10}),
                                   self._target.hub)

    def teardown(self) -> None:
        consumer = getattr(self, "_consumer", None)
        if consumer is not None:
            consumer.close()
        newest = getattr(self, "_newest", None)
        if newest is not None:
            newest.close()

    def _partitions(self) -> frozenset[int] | None:
        """Current partition ids (cached per process), or None when they cannot be listed now."""
        key = (self._target.endpoint, self._target.hub)
        with _METADATA_LOCK:
            cached = _METADATA.get(key)
            if cached and time.monotonic() - cached[0] < self._settings.discovery_interval_s:
                return cached[1]
        try:
            found = frozenset(list_partitions(self._consumer, replace(self._target, connect_timeout_s=5.0)))
        except EventHubsError as err:
            # Transient during streaming (broker restart): keep the last known set, retry later.
            LOG.warning("Partition discovery failed, will retry: %s", err)
            return cached[1] if cached else None
        with _METADATA_LOCK:
            _METADATA[key] = (time.monotonic(), found)
        return found

    def _commit(self, partition: int, next_offset: int) -> None:
        if self._settings.commit_after_run:
            assert self._after_run is not None  # ReadFromEventHubs refuses the settings without one
            self._after_run.hold(HELD_OFFSETS, HeldOffsets).hold(self._target, partition, next_offset)
            return
        from confluent_kafka import KafkaException, TopicPartition

        try:
            self._consumer.commit(offsets=[TopicPartition(self._target.hub, partition, next_offset)],
                                  asynchronous=False)
        except KafkaException as err:
            # Advisory only (lag dashboards); the runner's checkpoint is authoritative.
            LOG.warning("Offset commit for partition %d failed: %s", partition, err)

    def process(
        self,
        ref: PartitionRef,
        # Positional placeholders (the finalizer) must precede the keyword-passed tracker/estimator.
        finalizer: Any = beam.DoFn.BundleFinalizerParam,
        tracker: PartitionTracker = beam.DoFn.RestrictionParam(),
        estimator: IdleWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(),
    ) -> Iterator[Any]:
        from confluent_kafka import KafkaError, TopicPartition

        settings = self._settings
        restriction = tracker.current_restriction()
        # The next offset this bundle claimed, committed when the runner finalizes the bundle.
        # Registered in every bundle: Prism finalizes every bundle of a stage that asks for a
        # finalizer, and the SDK refuses to finalize one that registered nothing.
        committed: list[int] = []
        finalizer.register(lambda p=ref.partition: self._commit(p, committed[-1]) if committed else None)
        if self._budget.over or restriction.start >= restriction.stop:
            _finish(tracker)
            return
        known = True if ref.listed else self._partitions()
        if known is None:  # metadata unreachable right now: try again later, never give up silently
            tracker.defer_remainder(Duration(seconds=settings.discovery_interval_s))
            return
        if known is not True and ref.partition not in known:
            if settings.read_to_latest:
                _finish(tracker)
                return
            estimator.idle()  # a partition that does not exist must not hold the watermark
            tracker.defer_remainder(Duration(seconds=settings.discovery_interval_s))
            return
        # Slow I/O first, claims after: a slow fetch never holds the tracker.
        self._consumer.assign([TopicPartition(self._target.hub, ref.partition, restriction.start)])
        call_end = time.monotonic() + settings.max_call_s
        next_offset = restriction.start
        try:
            while True:
                caught_up = False
                records = []
                for message in self._consumer.consume(settings.batch_size, timeout=settings.poll_s):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            caught_up = True
                        elif error.fatal() or error.name() in _FATAL_CODES:
                            raise EventHubsError(explain(error.name(), error.str(), self._target))
                        else:
                            LOG.warning("Partition %d: %s (librdkafka retries)", ref.partition, error.str())
                        continue
                    if message.offset() < next_offset:
                        raise self._rewound(ref.partition, next_offset, message.offset())
                    records.append(message)
                if records:
                    claimed, spent = claim_within_budget(records, self._budget,
                                                         lambda m: tracker.try_claim(m.offset()))
                    if claimed:
                        next_offset = claimed[-1].offset() + 1
                        if settings.position_store:
                            assert self._after_run is not None  # ReadFromEventHubs refuses a store without one
                            self._after_run.record(settings.position_store, str(ref.partition), str(next_offset))
                        batch = self._batch(ref, claimed)
                        if batch is not None:
                            yield TimestampedValue(batch, Timestamp(micros=min(batch.timestamps_ms) * 1000))
                            estimator.observe(max(batch.timestamps_ms))
                        self._metrics.claimed(len(claimed), sum(map(len, batch.values)) if batch else 0)
                        self._report(ref.partition, next_offset, claimed[-1].timestamp()[1], tracker, estimator)
                        if settings.commit_offsets:
                            committed.append(next_offset)
                    if len(claimed) < len(records):
                        if spent:  # the record budget is spent: the read is over
                            _finish(tracker)
                        return  # else the range ended at a split point: the tracker is done
                if caught_up:
                    self._report(ref.partition, next_offset, None, tracker, estimator)
                    if settings.read_to_latest:
                        _finish(tracker)
                        return
                    estimator.idle()
                    tracker.defer_remainder(Duration(seconds=settings.caught_up_resume_s))
                    return
                if self._budget.over:
                    _finish(tracker)
                    return
                if time.monotonic() >= call_end:
                    tracker.defer_remainder()
                    return
        finally:
            self._consumer.unassign()

    def _report(self, partition: int, next_offset: int, last_read_ms: int | None, tracker: PartitionTracker,
                estimator: IdleWatermarkEstimator) -> None:
        """The partition's lag metrics and the tracker's backlog, from the end offset of the last
        fetch response (librdkafka keeps it: no request). Once per fetched batch, not per record."""
        from confluent_kafka import TopicPartition

        split = f"{self._target.hub}/{partition}"
        self._metrics.watermark(split, estimator)
        end = self._consumer.get_watermark_offsets(TopicPartition(self._target.hub, partition), cached=True)[1]
        if end is None or end < 0:
            return  # no fetch answered yet: unknown
        tracker.try_claim(PartitionEnd(end))
        backlog = max(end - next_offset, 0)
        self._metrics.backlog(split, backlog)
        if not backlog:
            self._metrics.lag(split, 0)
            return
        newest_ms = self._newest.newest_ms(partition, end) if last_read_ms is not None else None
        if newest_ms is not None and last_read_ms is not None:
            self._metrics.lag(split, newest_ms - last_read_ms)

    def _rewound(self, partition: int, expected: int, got: int) -> EventHubsError:
        store = self._settings.position_store
        return EventHubsError(
            f"Partition {partition} of {self._target.hub!r} went back from offset {expected} to {got}: the broker "
            "lost or truncated data. Re-read from a known position (--eventhubs_start_position) after checking "
            "the hub" + (f", and delete the position store {store} that --resume starts from." if store else ".")
        )

    def _batch(self, ref: PartitionRef, messages: list[Any]) -> EventHubsBatch | None:
        if ref.min_timestamp_ms is not None:
            # Kafka topics with producer (CreateTime) timestamps may hold, after the offset a start
            # time resolves to, records stamped before it: they would be behind the first watermark.
            messages = [m for m in messages if m.timestamp()[1] >= ref.min_timestamp_ms]
            if not messages:
                return None
        return EventHubsBatch(
            hub=self._target.hub,
            partition=ref.partition,
            offsets=[m.offset() for m in messages],
            timestamps_ms=[m.timestamp()[1] for m in messages],
            keys=[m.key() for m in messages],
            values=[m.value() or b"" for m in messages],
            headers=[tuple(m.headers() or ()) for m in messages],
        )


UnboundedReadPartition = unbounded(_ReadPartition)


class HeldOffsets:
    """Consumer-group offsets of finalized bundles, held by the run's AfterRun until the run has
    succeeded, then committed once per target; a killed or failed run commits none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offsets: dict[EventHubsTarget, dict[int, int]] = {}

    def hold(self, target: EventHubsTarget, partition: int, next_offset: int) -> None:
        with self._lock:
            held = self._offsets.setdefault(target, {})
            held[partition] = max(next_offset, held.get(partition, 0))
        LOG.info("eventhubs: partition %d finalized up to offset %d; committed to consumer group %s when the "
                 "run succeeds", partition, next_offset - 1, target.consumer_group)

    def held(self) -> dict[EventHubsTarget, dict[int, int]]:
        with self._lock:
            return {t: dict(o) for t, o in self._offsets.items()}

    def commit(self) -> None:
        """Commits every held offset, one request per target (the run has succeeded)."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        with self._lock:
            offsets, self._offsets = self._offsets, {}
        for target, by_partition in offsets.items():
            consumer = Consumer(_consumer_config(target))
            try:
                consumer.commit(offsets=[TopicPartition(target.hub, p, o) for p, o in sorted(by_partition.items())],
                                asynchronous=False)
                LOG.info("eventhubs: committed %s to consumer group %s after the run succeeded",
                         by_partition, target.consumer_group)
            except KafkaException as err:
                LOG.warning("eventhubs: committing offsets %s of consumer group %s failed (%s); a run starting "
                            "from the committed offsets reads those records again.", by_partition,
                            target.consumer_group, err)
            finally:
                consumer.close()

    def close(self) -> None:
        """The run failed or was stopped: commit nothing."""
        with self._lock:
            self._offsets = {}


class ReadFromEventHubs(beam.PTransform):
    """Reads an event hub (or Kafka topic) as EventHubsBatch elements, one SDF per partition.

    `after_run` receives what must wait for the run's success: the claimed offsets of a
    position store (`settings.position_store`, tracked with `after_run.track(store, source)`)
    and, with `commit_offsets` and `commit_after_run`, the consumer-group offsets."""

    def __init__(self, target: EventHubsTarget, settings: ReadSettings | None = None,
                 after_run: AfterRun | None = None) -> None:
        super().__init__()
        settings = settings or ReadSettings()
        if not settings.read_id:
            settings = replace(settings, read_id=uuid.uuid4().hex)
        settings.validate()
        if after_run is None:
            if settings.position_store:
                raise ValueError("ReadFromEventHubs: a position_store records claimed offsets in the run's "
                                 "AfterRun: pass after_run=AfterRun() after after_run.track(store, source), "
                                 "and commit it with run_and_commit(result, after_run).")
            if settings.commit_offsets and settings.commit_after_run:
                raise ValueError("ReadFromEventHubs: commit_after_run holds consumer-group offsets in the run's "
                                 "AfterRun: pass after_run=AfterRun() and commit it with "
                                 "run_and_commit(result, after_run), or set commit_after_run=False.")
        self._target = target
        self._settings = settings
        self._after_run = after_run

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        reader = _ReadPartition if self._settings.bounded else UnboundedReadPartition
        return (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "ListPartitions" >> beam.ParDo(_ListPartitions(self._target, self._settings))
            | "ReadPartitions" >> beam.ParDo(reader(self._target, self._settings, self._after_run))
        )


def to_raw_batch(batch: EventHubsBatch) -> RawBatch:
    """The pipeline's source element: payloads, offsets as positions, enqueued times as arrivals."""
    return RawBatch(
        source=f"eventhubs://{batch.hub}/{batch.partition}",
        records=batch.values,
        positions=[str(o) for o in batch.offsets],
        first_offset=batch.offsets[0] if batch.offsets else 0,
        arrival_ms=batch.timestamps_ms,
    )


class ReadRawBatches(beam.PTransform):
    """ReadFromEventHubs, as the pipeline's RawBatch elements."""

    def __init__(self, target: EventHubsTarget, settings: ReadSettings, after_run: AfterRun | None = None) -> None:
        super().__init__()
        self._read = ReadFromEventHubs(target, settings, after_run)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return pbegin | "ReadFromEventHubs" >> self._read | "ToRawBatches" >> beam.Map(to_raw_batch)


def check_uri(spec: SourceSpec) -> EventHubsTarget:
    """The namespace, hub and consumer group of --source eventhubs://NAMESPACE/HUB?consumer_group=G."""
    return parse_target(spec)
