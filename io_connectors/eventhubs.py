"""Native Python Event Hubs reader and writer over the Kafka-protocol endpoint.

Event Hubs namespaces (Standard tier and up) speak the Kafka protocol on
NAMESPACE.servicebus.windows.net:9093; confluent-kafka talks to it directly, so no Java
expansion service is involved. With --kafka_bootstrap (and plaintext) the same reader reads
any Kafka-protocol broker: it is also a native Python Kafka source for Beam.

Reader shape (one splittable DoFn, restriction = offset range per partition):
  Impulse -> _ListPartitions (metadata, start offsets, deadline) -> _ReadPartition (SDF)
Partition discovery lives inside the reading stage: one element per partition id below
--eventhubs_max_partitions; ids that do not exist yet re-list the hub's metadata on each
resume and start reading (from earliest) once the partition appears. A second discovery
stage would not work on the DirectRunner, which runs an SDF stage to completion before the
next one starts. Consumers use assign + seek, never group subscription: the runner's
checkpoint (the residual restriction) is the position of record. Committing offsets to the
consumer group on bundle finalization is optional and only for lag dashboards. With --resume
(DirectRunner) each partition starts at the next offset stored by the last successful run
(io_connectors.positions), and every claimed offset is recorded for this run's commit.

`python -m io_connectors.eventhubs produce ...` writes synthetic events (tests, benchmarks).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import apache_beam as beam
import orjson
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.watermark_estimators import WatermarkEstimatorProvider
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from io_connectors import positions
from io_connectors.eventhubs_client import (
    EventHubsError,
    EventHubsTarget,
    client_config,
    explain,
    list_partitions,
    parse_target,
    parse_timestamp_ms,
    start_offsets,
)
from pipelines.adapters.eventhubs_options import EventHubsOptions
from io_connectors.eventhubs_restriction import (
    OFFSET_INFINITY,
    EnqueuedTimeWatermarkEstimator,
    PartitionTracker,
    ReadBudget,
    remaining_size,
)
from io_connectors.records import RawBatch
from io_connectors.uri import SourceSpec, UriError, parse_sink

LOG = logging.getLogger(__name__)

__all__ = [
    "EventHubsBatch",
    "EventHubsError",
    "EventHubsRecord",
    "EventHubsTarget",
    "ReadFromEventHubs",
    "ReadSettings",
    "WriteToEventHubs",
    "source_from_uri",
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


@dataclass(frozen=True)
class ReadSettings:
    """Everything the reader needs besides the target; fixed at construction, picklable."""

    start_position: str = "earliest"
    start_timestamp_ms: int | None = None
    read_to_latest: bool = False
    max_records: int | None = None
    max_read_time_s: float | None = None
    commit_offsets: bool = False
    # Local in-memory DirectRunner: commit the consumer group's offsets when the whole run has
    # succeeded, not on bundle finalization (which that runner does before writing windows).
    commit_after_run: bool = False
    max_partitions: int = 32
    batch_size: int = 5000
    idle_after_s: float = 5.0  # quiet time after which a caught-up partition advances the watermark
    poll_s: float = 0.2  # one consume() wait
    max_call_s: float = 1.0  # longest process() call before a checkpoint (keeps bundles short)
    caught_up_resume_s: float = 0.2  # resume delay once a partition has caught up
    discovery_interval_s: float = 2.0  # metadata re-list period for partitions not there yet
    budget_key: str = ""
    position_store: str | None = None  # --resume: io_connectors.positions store of this read

    @property
    def bounded(self) -> bool:
        return self.read_to_latest or self.max_records is not None or self.max_read_time_s is not None

    def validate(self) -> None:
        problems = []
        if self.start_position == "timestamp" and self.start_timestamp_ms is None:
            problems.append("--eventhubs_start_position=timestamp needs --eventhubs_start_timestamp")
        if self.max_partitions < 1:
            problems.append("--eventhubs_max_partitions must be at least 1")
        if self.batch_size < 1:
            problems.append("--eventhubs_batch_size must be at least 1")
        if self.max_records is not None and self.max_records < 1:
            problems.append("--max_records must be positive")
        if problems:
            raise UriError("; ".join(problems) + ".")


class PartitionRef(NamedTuple):
    """One partition to read; the element of the reading SDF."""

    partition: int
    start_offset: int
    min_timestamp_ms: int | None  # skip records enqueued before this (timestamp start)
    deadline_s: float | None  # wall-clock end of a --max_read_time read
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
        "session.timeout.ms": 6000,
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
                    max_partitions: int, min_timestamp_ms: int | None,
                    deadline_s: float | None) -> list[PartitionRef]:
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
        refs.append(PartitionRef(partition, start, min_timestamp_ms if listed else None, deadline_s, listed))
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
        # Resolve the start position only where no stored offset applies ("latest" costs a fetch).
        fresh = [p for p in existing if p not in stored]
        resolved = start_offsets(self._consumer, self._target, fresh, settings.start_position,
                                 settings.start_timestamp_ms) if fresh else {}
        deadline = time.time() + settings.max_read_time_s if settings.max_read_time_s else None
        min_ts = settings.start_timestamp_ms if settings.start_position == "timestamp" else None
        yield from plan_partitions(existing, resolved, stored, settings.max_partitions, min_ts, deadline)

    def teardown(self) -> None:
        consumer = getattr(self, "_consumer", None)
        if consumer is not None:
            consumer.close()


class _OffsetRestrictions(RestrictionProvider):
    """OffsetRange per partition; size from end offsets (a client made lazily on the worker)."""

    def __init__(self, target: EventHubsTarget) -> None:
        self._target = target
        self._client: Any = None
        self._ends: dict[int, tuple[float, int | None]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"_target": self._target, "_client": None, "_ends": {}}

    def initial_restriction(self, ref: PartitionRef) -> OffsetRange:
        return OffsetRange(ref.start_offset, OFFSET_INFINITY)

    def create_tracker(self, restriction: OffsetRange) -> PartitionTracker:
        return PartitionTracker(restriction)

    def split(self, ref: PartitionRef, restriction: OffsetRange) -> Iterable[OffsetRange]:
        yield restriction  # one reader per partition: splitting a live log buys nothing

    def restriction_size(self, ref: PartitionRef, restriction: OffsetRange) -> float:
        return remaining_size(restriction, self._end_offset(ref.partition))

    def _end_offset(self, partition: int) -> int | None:
        cached = self._ends.get(partition)
        if cached and time.monotonic() - cached[0] < 10:
            return cached[1]
        end: int | None = None
        try:
            from confluent_kafka import Consumer, KafkaException, TopicPartition

            if self._client is None:
                self._client = Consumer(_consumer_config(replace(self._target, connect_timeout_s=2.0)))
            try:
                end = self._client.get_watermark_offsets(TopicPartition(self._target.hub, partition), timeout=2)[1]
            except KafkaException:
                end = None  # sizing is advisory; the read itself reports real errors
        except EventHubsError:
            end = None
        self._ends[partition] = (time.monotonic(), end)
        return end


class _EnqueuedTimeWatermarks(WatermarkEstimatorProvider):
    def __init__(self, idle_after_s: float) -> None:
        self._idle_after_s = idle_after_s

    def initial_estimator_state(self, ref: PartitionRef, restriction: OffsetRange) -> tuple[int | None, None]:
        return ref.min_timestamp_ms, None

    def create_watermark_estimator(self, state: Any) -> EnqueuedTimeWatermarkEstimator:
        return EnqueuedTimeWatermarkEstimator(state, self._idle_after_s)


_FATAL_CODES = {"_UNKNOWN_TOPIC", "UNKNOWN_TOPIC_OR_PART", "TOPIC_AUTHORIZATION_FAILED", "_AUTHENTICATION",
                "SASL_AUTHENTICATION_FAILED", "GROUP_AUTHORIZATION_FAILED"}


def _finish(tracker: Any) -> None:
    """End this restriction without a residual (bounded read over). Reads the end afresh:
    the runner may have split the restriction since the call began."""
    tracker.try_claim(tracker.current_restriction().stop)


class _ReadPartition(beam.DoFn, RestrictionProvider, WatermarkEstimatorProvider):
    """Reads one partition from its restriction's start; emits EventHubsBatch elements.

    Its own restriction and watermark-estimator provider (as Beam's Watch does): provider
    methods run on a separately deserialized copy before setup(), so they only use the
    configuration fixed in __init__ (sizing makes its own lazy client).
    """

    def __init__(self, target: EventHubsTarget, settings: ReadSettings) -> None:
        self._target = target
        self._settings = settings
        self._restrictions = _OffsetRestrictions(target)
        self._watermarks = _EnqueuedTimeWatermarks(settings.idle_after_s)

    # RestrictionProvider / WatermarkEstimatorProvider, delegated.
    def initial_restriction(self, ref: PartitionRef) -> OffsetRange:
        return self._restrictions.initial_restriction(ref)

    def create_tracker(self, restriction: OffsetRange) -> PartitionTracker:
        return self._restrictions.create_tracker(restriction)

    def split(self, ref: PartitionRef, restriction: OffsetRange) -> Iterable[OffsetRange]:
        return self._restrictions.split(ref, restriction)

    def restriction_size(self, ref: PartitionRef, restriction: OffsetRange) -> float:
        return self._restrictions.restriction_size(ref, restriction)

    def truncate(self, ref: PartitionRef, restriction: OffsetRange) -> None:
        return None  # drain: stop reading, nothing left to finish

    def initial_estimator_state(self, ref: PartitionRef, restriction: OffsetRange) -> Any:
        return self._watermarks.initial_estimator_state(ref, restriction)

    def create_watermark_estimator(self, state: Any) -> EnqueuedTimeWatermarkEstimator:
        return self._watermarks.create_watermark_estimator(state)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_consumer", None)
        state.pop("_budget", None)
        return state

    def setup(self) -> None:
        from confluent_kafka import Consumer

        self._consumer = Consumer(_consumer_config(self._target))
        self._budget = ReadBudget(self._settings.budget_key, self._settings.max_records)

    def teardown(self) -> None:
        consumer = getattr(self, "_consumer", None)
        if consumer is not None:
            consumer.close()

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

    def _stop_now(self, ref: PartitionRef) -> bool:
        if self._budget.exhausted:
            return True
        return ref.deadline_s is not None and time.time() >= ref.deadline_s

    def _commit(self, partition: int, next_offset: int) -> None:
        if self._settings.commit_after_run:
            RUN_COMMITS.hold(self._target, partition, next_offset)
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
        estimator: EnqueuedTimeWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(),
    ) -> Iterator[Any]:
        yield from self._read(ref, finalizer, tracker, estimator)

    def _read(self, ref: PartitionRef, finalizer: Any, tracker: PartitionTracker,
              estimator: EnqueuedTimeWatermarkEstimator) -> Iterator[Any]:
        from confluent_kafka import KafkaError, TopicPartition

        settings = self._settings
        restriction = tracker.current_restriction()
        if self._stop_now(ref) or restriction.start >= restriction.stop:
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
            estimator.caught_up()  # a partition that does not exist must not hold the watermark
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
                        store = settings.position_store
                        raise EventHubsError(
                            f"Partition {ref.partition} of {self._target.hub!r} went back from offset {next_offset} "
                            f"to {message.offset()}: the broker lost or truncated data. Re-read from a known "
                            "position (--eventhubs_start_position) after checking the hub"
                            + (f", and delete the position store {store} that --resume starts from." if store
                               else ".")
                        )
                    records.append(message)
                if records:
                    granted = self._budget.take(len(records))
                    claimed = []
                    for message in records[:granted]:
                        if not tracker.try_claim(message.offset()):
                            break
                        claimed.append(message)
                    self._budget.give_back(granted - len(claimed))
                    if claimed:
                        next_offset = claimed[-1].offset() + 1
                        if settings.position_store:
                            positions.PENDING.record(settings.position_store, str(ref.partition), str(next_offset))
                        LOG.debug("eventhubs: partition %d claimed %d records up to offset %d", ref.partition,
                                  len(claimed), next_offset - 1)
                        batch = self._batch(ref, claimed)
                        if batch is not None:
                            yield TimestampedValue(batch, Timestamp(micros=min(batch.timestamps_ms) * 1000))
                            estimator.observe_ms(max(batch.timestamps_ms))
                        if settings.commit_offsets:
                            finalizer.register(lambda p=ref.partition, o=next_offset: self._commit(p, o))
                    if len(claimed) < len(records):
                        if granted < len(records):  # --max_records reached: the read is over
                            _finish(tracker)
                        return  # else the range ended at a split point: the tracker is done
                if caught_up:
                    if settings.read_to_latest:
                        _finish(tracker)
                        return
                    estimator.caught_up()
                    tracker.defer_remainder(Duration(seconds=settings.caught_up_resume_s))
                    return
                if self._stop_now(ref):
                    _finish(tracker)
                    return
                if time.monotonic() >= call_end:
                    tracker.defer_remainder()
                    return
        finally:
            self._consumer.unassign()

    def _batch(self, ref: PartitionRef, messages: list[Any]) -> EventHubsBatch | None:
        if ref.min_timestamp_ms is not None:
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


class _ReadPartitionUnbounded(_ReadPartition):
    """The same reader for endless reads: its output PCollection is unbounded. Bounded reads
    (--max_records, --max_read_time, read-to-latest) keep a bounded PCollection so batch
    aggregation in the global window stays possible downstream."""

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        ref: PartitionRef,
        # Positional placeholders (the finalizer) must precede the keyword-passed tracker/estimator.
        finalizer: Any = beam.DoFn.BundleFinalizerParam,
        tracker: PartitionTracker = beam.DoFn.RestrictionParam(),
        estimator: EnqueuedTimeWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(),
    ) -> Iterator[Any]:
        yield from self._read(ref, finalizer, tracker, estimator)


class RunCommits:
    """Consumer-group offsets of finalized bundles, held until the run succeeds (see
    `runners.direct.finalizes_before_writing`), then committed; a killed or failed run commits none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offsets: dict[EventHubsTarget, dict[int, int]] = {}

    def hold(self, target: EventHubsTarget, partition: int, next_offset: int) -> None:
        with self._lock:
            if not self._offsets:
                positions.PENDING.on_success(self.commit_all)
            held = self._offsets.setdefault(target, {})
            held[partition] = max(next_offset, held.get(partition, 0))
        LOG.info("eventhubs: partition %d finalized up to offset %d; committed to consumer group %s when the "
                 "run succeeds", partition, next_offset - 1, target.consumer_group)

    def held(self) -> dict[EventHubsTarget, dict[int, int]]:
        with self._lock:
            return {t: dict(o) for t, o in self._offsets.items()}

    def commit_all(self) -> None:
        """Commits every held offset (called once the run has succeeded)."""
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


RUN_COMMITS = RunCommits()


class ReadFromEventHubs(beam.PTransform):
    """Reads an event hub (or Kafka topic) as EventHubsBatch elements, one SDF per partition."""

    def __init__(self, target: EventHubsTarget, settings: ReadSettings | None = None) -> None:
        super().__init__()
        settings = settings or ReadSettings()
        if not settings.budget_key:
            settings = replace(settings, budget_key=uuid.uuid4().hex)
        settings.validate()
        self._target = target
        self._settings = settings

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        reader = _ReadPartition if self._settings.bounded else _ReadPartitionUnbounded
        if self._settings.commit_offsets and self._settings.commit_after_run:
            positions.PENDING.arm()  # here, in the launching process, before the run starts
        return (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "ListPartitions" >> beam.ParDo(_ListPartitions(self._target, self._settings))
            | "ReadPartitions" >> beam.ParDo(reader(self._target, self._settings))
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


class _ReadRawBatches(beam.PTransform):
    def __init__(self, target: EventHubsTarget, settings: ReadSettings) -> None:
        super().__init__()
        self._read = ReadFromEventHubs(target, settings)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return pbegin | "ReadFromEventHubs" >> self._read | "ToRawBatches" >> beam.Map(to_raw_batch)


def check_uri(spec: SourceSpec) -> EventHubsTarget:
    """The namespace, hub and consumer group of --source eventhubs://NAMESPACE/HUB?consumer_group=G."""
    return parse_target(spec)


def target_from_options(spec: SourceSpec, options: PipelineOptions) -> EventHubsTarget:
    eh = options.view_as(EventHubsOptions)
    return parse_target(
        spec,
        bootstrap=eh.kafka_bootstrap,
        security_protocol=eh.eventhubs_security_protocol,
        auth=eh.eventhubs_auth,
        connection_string_env=eh.eventhubs_connection_string_env,
        connect_timeout_s=eh.eventhubs_connect_timeout,
    )


def settings_from_options(options: PipelineOptions) -> ReadSettings:
    from pipelines.options import AnalyticsOptions
    from runners.direct import finalizes_before_writing

    eh = options.view_as(EventHubsOptions)
    analytics = options.view_as(AnalyticsOptions)
    timestamp = parse_timestamp_ms(eh.eventhubs_start_timestamp) if eh.eventhubs_start_timestamp else None
    settings = ReadSettings(
        start_position=eh.eventhubs_start_position,
        start_timestamp_ms=timestamp,
        read_to_latest=eh.eventhubs_read_to_latest,
        max_records=analytics.max_records,
        max_read_time_s=analytics.max_read_time,
        commit_offsets=eh.eventhubs_commit_offsets,
        commit_after_run=finalizes_before_writing(options),
        max_partitions=eh.eventhubs_max_partitions,
        batch_size=eh.eventhubs_batch_size,
    )
    settings.validate()
    return settings


def source_from_uri(spec: SourceSpec, options: PipelineOptions) -> beam.PTransform:
    """--source eventhubs://NAMESPACE/HUB?consumer_group=G -> RawBatches (with --resume: from the
    offsets the last successful run stored, recording this run's for commit when it succeeds)."""
    from pipelines.options import AnalyticsOptions

    target = target_from_options(spec, options)
    settings = settings_from_options(options)
    analytics = options.view_as(AnalyticsOptions)
    if getattr(analytics, "resume", False):
        source = spec.uri or f"eventhubs://{target.namespace}/{target.hub}"
        try:
            store = positions.resume_store(parse_sink(analytics.output, "--output").path, source,
                                           settings.bounded, "--eventhubs_read_to_latest")
            stored_offsets(store)  # a damaged store fails here, before anything is read
        except positions.PositionStoreError as err:
            raise UriError(str(err)) from None
        settings = replace(settings, position_store=store)
    return _ReadRawBatches(target, settings)


# ----------------------------------------------------------------------------------------- writer


class _Deliveries:
    """Counts acknowledgements; keeps the first errors so none is dropped silently."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.errors: list[str] = []

    def __call__(self, error: Any, message: Any) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(f"{error.name()}: {error.str()}")
        self.last_error = error


def producer_config(target: EventHubsTarget, idempotent: bool = True, **extra: Any) -> dict[str, Any]:
    config = {
        **client_config(target),
        # Idempotence: retries after a lost ack never duplicate or reorder a partition's events.
        "enable.idempotence": idempotent,
        "linger.ms": 20,
        "batch.size": 512 * 1024,
        "compression.type": "none",  # Event Hubs' Kafka endpoint rejects compressed batches on some tiers
        "message.timeout.ms": 120_000,
    }
    config.update(extra)
    return config


class _Flusher:
    """Shared by the writer DoFn and the CLI: produce, poll, and flush-or-raise."""

    def __init__(self, producer: Any, target: EventHubsTarget, flush_timeout_s: float) -> None:
        self._producer = producer
        self._target = target
        self._flush_timeout_s = flush_timeout_s
        self.deliveries = _Deliveries()
        self._sent = 0

    def send(self, value: bytes, key: bytes | None = None, partition: int | None = None) -> None:
        kwargs: dict[str, Any] = {"value": value, "key": key, "on_delivery": self.deliveries}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(self._target.hub, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain, then retry
        self._sent += 1
        self._producer.poll(0)

    def flush(self) -> int:
        left = self._producer.flush(self._flush_timeout_s)
        deliveries, sent = self.deliveries, self._sent
        self.deliveries, self._sent = _Deliveries(), 0
        if deliveries.failed or left:
            first = getattr(deliveries, "last_error", None)
            reason = (
                explain(first.name(), first.str(), self._target) if first is not None
                else f"{left} events still unacknowledged after {self._flush_timeout_s:.0f} s"
            )
            raise EventHubsError(
                f"{deliveries.failed + left} of {sent} events were not delivered to {self._target.hub!r} "
                f"(first errors: {deliveries.errors or ['timeout']}). {reason}"
            )
        return deliveries.delivered


class _WriteEvents(beam.DoFn):
    def __init__(self, target: EventHubsTarget, key_field: str | None, idempotent: bool,
                 flush_timeout_s: float, producer_extra: dict[str, Any]) -> None:
        self._target = target
        self._key_field = key_field
        self._idempotent = idempotent
        self._flush_timeout_s = flush_timeout_s
        self._extra = producer_extra

    def setup(self) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(producer_config(self._target, self._idempotent, **self._extra))
        self._flusher = _Flusher(self._producer, self._target, self._flush_timeout_s)

    def process(self, element: Any) -> None:
        key = None
        if isinstance(element, dict):
            if self._key_field is not None:
                raw_key = element.get(self._key_field)
                key = None if raw_key is None else str(raw_key).encode()
            value = orjson.dumps(element)
        elif isinstance(element, str):
            value = element.encode()
        elif isinstance(element, (bytes, bytearray)):
            value = bytes(element)
        else:
            raise TypeError(f"WriteToEventHubs takes dicts, str or bytes, not {type(element).__name__}.")
        self._flusher.send(value, key)

    def finish_bundle(self) -> None:
        # A bundle is done only when the service acknowledged every event in it.
        self._flusher.flush()

    def teardown(self) -> None:
        producer = getattr(self, "_producer", None)
        if producer is not None:
            producer.flush(5)


class WriteToEventHubs(beam.PTransform):
    """Writes dicts (JSON-encoded; key from `key_field`), str or bytes to an event hub.

    Idempotent producer, batched by librdkafka (linger/batch size). Each bundle waits for all
    acknowledgements and fails with EventHubsError naming the cause if any event was not
    delivered, so the runner retries the bundle instead of losing events.
    """

    def __init__(self, target: EventHubsTarget, key_field: str | None = None, idempotent: bool = True,
                 flush_timeout_s: float = 120.0, producer_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._fn = _WriteEvents(target, key_field, idempotent, flush_timeout_s, dict(producer_config or {}))

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "Produce" >> beam.ParDo(self._fn)


# -------------------------------------------------------------------------------------------- CLI


def _produce_cli(argv: Sequence[str]) -> int:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from io_connectors.synthetic import SyntheticConfig, generate

    parser = argparse.ArgumentParser(prog="python -m io_connectors.eventhubs produce",
                                     description="Write seeded synthetic events to an event hub / Kafka topic.")
    parser.add_argument("uri", help="eventhubs://NAMESPACE/HUB")
    parser.add_argument("--kafka_bootstrap", default=None)
    parser.add_argument("--security_protocol", default="sasl_ssl")
    parser.add_argument("--connection_string_env", default="EVENTHUBS_CONNECTION_STRING")
    parser.add_argument("--auth", default="connection_string", choices=("connection_string", "entra"))
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--malformed", type=float, default=0.0)
    parser.add_argument("--create_partitions", type=int, default=0,
                        help="Create the topic with this many partitions first (Kafka brokers; not Event Hubs).")
    args = parser.parse_args(argv)
    from io_connectors.uri import parse_source

    target = parse_target(parse_source(args.uri), bootstrap=args.kafka_bootstrap,
                          security_protocol=args.security_protocol, auth=args.auth,
                          connection_string_env=args.connection_string_env)
    if args.create_partitions:
        admin = AdminClient(client_config(target))
        for future in admin.create_topics([NewTopic(target.hub, num_partitions=args.create_partitions,
                                                    replication_factor=1)]).values():
            future.result()
    config = SyntheticConfig(events=args.events, keys=args.keys, seed=args.seed, malformed=args.malformed, late=0.0)
    flusher = _Flusher(Producer(producer_config(target)), target, 120.0)
    started = time.monotonic()
    for value in generate(config, 0, args.events):
        flusher.send(value, key=orjson.loads(value).get("key", "").encode() if value.startswith(b"{") else None)
    delivered = flusher.flush()
    seconds = time.monotonic() - started
    print(f"delivered {delivered} events to {target.hub} in {seconds:.2f} s ({delivered / max(seconds, 1e-9):,.0f}/s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "produce":
        print("usage: python -m io_connectors.eventhubs produce eventhubs://NAMESPACE/HUB [options]", file=sys.stderr)
        return 2
    try:
        return _produce_cli(argv[1:])
    except (EventHubsError, UriError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

