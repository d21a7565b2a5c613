"""Pub/Sub source and sink that run on every runner.

`--source pubsub://projects/P/subscriptions/S` reads a subscription; `pubsub://projects/P/topics/T`
creates a subscription owned by the job (deleted when the launching process ends; a one-day
expiration policy cleans up after a crash). PUBSUB_EMULATOR_HOST is honoured by the client.

On Dataflow the read is Beam's built-in ReadFromPubSub (with id_label and timestamp_attribute).
Everywhere else it is a splittable DoFn (`_PullFn`) that pulls synchronously, emits each pull
as one RawBatch, and acknowledges only when the runner finalizes the bundle, so a crash
redelivers instead of losing; leases are extended by a background thread until then.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import apache_beam as beam
import orjson
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from io_connectors import positions
from io_connectors.metrics import NAMESPACE
from io_connectors.pubsub_watermark import Clock, PubSubWatermarkEstimator
from io_connectors.records import RawBatch
from io_connectors.uri import SourceSpec, UriError, redact_uri
from pipelines.adapters.pubsub_options import PubSubOptions
from pipelines.options import AnalyticsOptions
from transforms.decode import DecodeError, parse_event_time

_LOG = logging.getLogger(__name__)
_UNBOUNDED = 2**62  # the restriction of an endless read: far more records than any job sees
_ACK_CHUNK = 1000  # ack ids per acknowledge/modify request (the API caps request size)
_PULL_TIMEOUT_S = 5.0
_OWNED_SUBSCRIPTION_TTL_S = 24 * 3600  # Pub/Sub's minimum expiration policy


# --------------------------------------------------------------------------- names and URIs


@dataclass(frozen=True)
class PubSubPath:
    """projects/P/subscriptions/S or projects/P/topics/T."""

    project: str
    kind: str  # "subscriptions" or "topics"
    name: str

    @property
    def path(self) -> str:
        return f"projects/{self.project}/{self.kind}/{self.name}"

    @property
    def is_topic(self) -> bool:
        return self.kind == "topics"


def parse_pubsub_path(text: str, what: str = "--source") -> PubSubPath:
    """Accepts projects/P/{subscriptions|topics}/NAME with or without the pubsub:// prefix."""
    raw = text[len("pubsub://") :] if text.startswith("pubsub://") else text
    parts = raw.split("?", 1)[0].strip("/").split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] not in ("subscriptions", "topics") or not all(parts):
        raise UriError(
            f"{what} {redact_uri(text)!r} is not a Pub/Sub name; write pubsub://projects/PROJECT/subscriptions/NAME "
            "or pubsub://projects/PROJECT/topics/NAME."
        )
    return PubSubPath(parts[1], parts[2], parts[3])


def parse_topic(text: str, what: str = "--pubsub_dead_letter_topic") -> str:
    path = parse_pubsub_path(text, what)
    if not path.is_topic:
        raise UriError(f"{what} {redact_uri(text)!r} names a subscription; give projects/PROJECT/topics/NAME.")
    return path.path


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ReadSettings:
    """Everything the native reader needs; picklable, so it travels with the DoFn."""

    subscription: str
    max_records: int | None = None
    max_read_time_s: float | None = None
    stop_when_idle_s: float | None = None
    ack_deadline_s: int = 60
    max_messages: int = 1000
    bundle_seconds: float = 10.0
    idle_watermark_s: float = 10.0
    timestamp_attribute: str | None = None
    id_label: str | None = None
    max_lease_s: float = 600.0  # a lease never finalized (a failed bundle) is released after this
    # Local in-memory DirectRunner: acknowledge when the whole run has succeeded, not on bundle
    # finalization (which that runner does before the windows are written).
    ack_after_run: bool = False

    @property
    def bounded(self) -> bool:
        return any(v is not None for v in (self.max_records, self.max_read_time_s, self.stop_when_idle_s))

    def validate(self) -> None:
        problems = []
        if not 10 <= self.ack_deadline_s <= 600:
            problems.append(f"--pubsub_ack_deadline {self.ack_deadline_s} must be between 10 and 600 seconds")
        if self.max_messages < 1:
            problems.append(f"--pubsub_max_messages {self.max_messages} must be at least 1")
        if self.stop_when_idle_s is not None and self.stop_when_idle_s <= 0:
            problems.append(f"--pubsub_stop_when_idle {self.stop_when_idle_s} must be a positive number of seconds")
        if self.bundle_seconds <= 0:
            problems.append(f"--pubsub_bundle_seconds {self.bundle_seconds} must be positive")
        if self.idle_watermark_s < 0:
            problems.append(f"--pubsub_idle_watermark {self.idle_watermark_s} must be 0 or more seconds")
        if problems:
            raise UriError("; ".join(problems) + ".")


# --------------------------------------------------------------------------- leases


class _RecentIds:
    """A bounded set of ids already acknowledged by this worker (drops redelivered duplicates)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def add_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._ids[key] = None
            self._ids.move_to_end(key)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


class LeaseKeeper:
    """Holds the ack ids of emitted-but-unfinalized messages and keeps extending their ack
    deadline (every third of it) from a daemon thread, until they are acked, nacked or older
    than `max_lease_s`. It covers the gap between the end of process() and finalization,
    which on Flink or Dataflow lasts until the checkpoint is committed."""

    def __init__(
        self,
        client: Any,
        subscription: str,
        deadline_s: int,
        max_lease_s: float,
        clock: Clock = time.time,
        start_thread: bool = True,
    ) -> None:
        self._client = client
        self._subscription = subscription
        self._deadline_s = deadline_s
        self._max_lease_s = max_lease_s
        self._clock = clock
        self._held: dict[str, float] = {}  # ack id -> time first leased
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start_thread:
            self._thread = threading.Thread(target=self._run, name="pubsub-lease-keeper", daemon=True)
            self._thread.start()

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def add(self, ack_ids: Sequence[str]) -> None:
        now = self._clock()
        with self._lock:
            for ack_id in ack_ids:
                self._held.setdefault(ack_id, now)
        # The subscription's own deadline may be shorter than ours: set ours at once.
        self._modify(list(ack_ids), self._deadline_s)

    def release(self, ack_ids: Iterable[str]) -> None:
        with self._lock:
            for ack_id in ack_ids:
                self._held.pop(ack_id, None)

    def ack(self, ack_ids: Sequence[str]) -> None:
        self.release(ack_ids)
        for chunk in _chunks(ack_ids):
            self._client.acknowledge(subscription=self._subscription, ack_ids=chunk)

    def nack(self, ack_ids: Sequence[str]) -> None:
        """Hand messages back for immediate redelivery."""
        self.release(ack_ids)
        self._modify(list(ack_ids), 0)

    def extend_all(self) -> int:
        """One lease round: extend every held id, drop those held longer than max_lease_s."""
        now = self._clock()
        with self._lock:
            expired = [a for a, since in self._held.items() if now - since > self._max_lease_s]
            for ack_id in expired:
                del self._held[ack_id]
            live = list(self._held)
        if expired:
            _LOG.warning(
                "Pub/Sub: %d messages were never finalized within %.0f s; letting Pub/Sub redeliver them.",
                len(expired),
                self._max_lease_s,
            )
        self._modify(live, self._deadline_s)
        return len(live)

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        for chunk in _chunks(ack_ids):
            try:
                self._client.modify_ack_deadline(
                    subscription=self._subscription, ack_ids=chunk, ack_deadline_seconds=seconds
                )
            except gexc.GoogleAPICallError as err:
                # Expired or already-acked ids; the next round or redelivery sorts it out.
                _LOG.warning("Pub/Sub modify_ack_deadline failed for %d ids: %s", len(chunk), err)

    def _run(self) -> None:
        interval = max(1.0, self._deadline_s / 3)
        while not self._stop.wait(interval):
            try:
                self.extend_all()
            except Exception as err:  # noqa: BLE001 - the keeper must survive transient errors
                _LOG.warning("Pub/Sub lease extension failed: %s", err)

    def close(self) -> None:
        self._stop.set()


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    items = list(items)
    for start in range(0, len(items), _ACK_CHUNK):
        yield items[start : start + _ACK_CHUNK]


# --------------------------------------------------------------------------- the native reader


class ReadStart(NamedTuple):
    """The reader's element: created at run time, it carries what the providers need."""

    started_s: float  # when the read started (epoch seconds), for --max_read_time
    max_records: int | None
    idle_watermark_s: float


class _PullTracker(OffsetRestrictionTracker):
    """Offsets count records emitted; an endless read reports itself unbounded."""

    def is_bounded(self) -> bool:
        return self._range.stop < _UNBOUNDED


class _PullRestrictions(RestrictionProvider):
    def initial_restriction(self, element: ReadStart) -> OffsetRange:
        return OffsetRange(0, element.max_records if element.max_records is not None else _UNBOUNDED)

    def create_tracker(self, restriction: OffsetRange) -> _PullTracker:
        return _PullTracker(restriction)

    def restriction_size(self, element: ReadStart, restriction: OffsetRange) -> int:
        return restriction.size()

    def split(self, element: ReadStart, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction  # one reader per job start; Pub/Sub spreads load itself


class _WatermarkProvider(WatermarkEstimatorProvider):
    """PubSubWatermarkEstimators whose idle delay comes from the element."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock

    def initial_estimator_state(self, element: ReadStart, restriction: OffsetRange) -> tuple:
        return (None, None, element.idle_watermark_s)

    def create_watermark_estimator(self, estimator_state: tuple) -> PubSubWatermarkEstimator:
        watermark_ms, last_activity_ms, idle_s = estimator_state
        return _CheckpointedEstimator((watermark_ms, last_activity_ms), idle_s, self._clock)


class _CheckpointedEstimator(PubSubWatermarkEstimator):
    """Carries its idle delay in its state so that checkpoints keep it."""

    def __init__(self, state: tuple, idle_delay_s: float, clock: Clock) -> None:
        super().__init__(state, idle_delay_s, clock)
        self._idle_s = idle_delay_s

    def get_estimator_state(self) -> tuple:
        return (*super().get_estimator_state(), self._idle_s)


class RunAcks:
    """Ack ids of finalized bundles, held (their deadlines extended) until the run succeeds.

    The local FnApiRunner finalizes a read bundle as soon as the read stage has processed it,
    but writes windows only after the whole read: acknowledging at finalization would lose
    those messages if the process died in between. Held messages are acknowledged by
    `positions.PENDING` at exit after a successful run; after a crash their leases lapse and
    Pub/Sub delivers them again."""

    def __init__(self, client_factory: Callable[[], Any] = lambda: _default_subscriber()) -> None:
        self._client_factory = client_factory
        self._keepers: dict[str, LeaseKeeper] = {}
        self._lock = threading.Lock()

    def hold(self, subscription: str, deadline_s: int, ack_ids: Sequence[str]) -> None:
        with self._lock:
            keeper = self._keepers.get(subscription)
            if keeper is None:
                # No lease cap: these messages are done, they only wait for the run to end.
                keeper = LeaseKeeper(self._client_factory(), subscription, deadline_s, float("inf"))
                self._keepers[subscription] = keeper
                positions.PENDING.on_success(self.ack_all)
        keeper.add(ack_ids)

    def held(self) -> int:
        with self._lock:
            return sum(len(k.held()) for k in self._keepers.values())

    def ack_all(self) -> None:
        """Acknowledges every held message (called once the run has succeeded)."""
        with self._lock:
            keepers, self._keepers = self._keepers, {}
        for subscription, keeper in keepers.items():
            ids = keeper.held()
            keeper.close()
            try:
                keeper.ack(ids)
            except gexc.GoogleAPIError as err:  # call errors and exhausted retries alike
                _LOG.warning("Pub/Sub: could not acknowledge %d messages of %s (%s); Pub/Sub will deliver "
                             "them again and the next run counts them again unless it runs with --dedupe_by.",
                             len(ids), subscription, err)
                continue
            _LOG.info("Pub/Sub: acknowledged %d messages of %s after the run succeeded", len(ids), subscription)


RUN_ACKS = RunAcks()


def _publish_ms(message: Any) -> int:
    return int(message.publish_time.timestamp() * 1000)


def event_time_ms(message: Any, timestamp_attribute: str | None) -> int:
    """The message's event time: the attribute when set and parseable, else the publish time."""
    if timestamp_attribute:
        raw = message.attributes.get(timestamp_attribute)
        if raw is not None:
            try:
                return parse_event_time(raw, timestamp_attribute)
            except DecodeError:
                pass  # the record still reaches decode; only the watermark falls back
    return _publish_ms(message)


def _default_subscriber() -> Any:
    return pubsub_v1.SubscriberClient()


class _PullFn(beam.DoFn):
    """Splittable reader: element = the read's start time (epoch seconds), restriction = the
    range of record counts still allowed. Each pull becomes one RawBatch; acks wait for
    bundle finalization."""

    def __init__(
        self,
        settings: ReadSettings,
        clock: Clock = time.time,
        client_factory: Callable[[], Any] = _default_subscriber,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._client_factory = client_factory
        self._pulled = Metrics.counter(NAMESPACE, "pubsub_messages_pulled")
        self._duplicates = Metrics.counter(NAMESPACE, "pubsub_duplicates_dropped")
        self._acked = Metrics.counter(NAMESPACE, "pubsub_messages_acked")

    def setup(self) -> None:
        s = self._settings
        self._client = self._client_factory()
        self._leases = LeaseKeeper(self._client, s.subscription, s.ack_deadline_s, s.max_lease_s, self._clock)
        self._committed = _RecentIds()

    def teardown(self) -> None:
        self._leases.close()

    def _should_stop(self, started_s: float, watermark: PubSubWatermarkEstimator) -> str | None:
        s = self._settings
        if s.max_read_time_s is not None and self._clock() - started_s >= s.max_read_time_s:
            return "max_read_time"
        if s.stop_when_idle_s is not None and watermark.idle_seconds() >= s.stop_when_idle_s:
            return "drained"
        return None

    def _finalize(self, pending: dict[str, str]) -> None:
        """Runs when the runner has committed this bundle's output: only now acknowledge."""
        if not pending:
            return
        self._acknowledge(list(pending.values()))
        self._committed.add_all(pending.keys())
        self._acked.inc(len(pending))
        if self._settings.ack_after_run:
            _LOG.info("Pub/Sub: bundle of %d messages finalized; acknowledged when the run succeeds", len(pending))
        else:
            _LOG.info("Pub/Sub: acknowledged %d messages on bundle finalization", len(pending))

    def _acknowledge(self, ack_ids: list[str]) -> None:
        if self._settings.ack_after_run:
            self._leases.release(ack_ids)
            RUN_ACKS.hold(self._settings.subscription, self._settings.ack_deadline_s, ack_ids)
        else:
            self._leases.ack(ack_ids)

    def _pull(self, count: int) -> list[Any]:
        try:
            response = self._client.pull(
                subscription=self._settings.subscription, max_messages=count, timeout=_PULL_TIMEOUT_S
            )
        except (gexc.DeadlineExceeded, gexc.ServiceUnavailable) as err:
            _LOG.info("Pub/Sub pull returned nothing (%s)", type(err).__name__)
            return []
        return list(response.received_messages)

    def process(
        self,
        start: ReadStart,
        finalizer: Any = beam.DoFn.BundleFinalizerParam,  # placeholders must precede the SDF params
        tracker: _PullTracker = beam.DoFn.RestrictionParam(_PullRestrictions()),
        watermark: PubSubWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(_WatermarkProvider()),
    ) -> Iterator[Any]:
        s = self._settings
        watermark.bind_clock(self._clock)
        bundle_started = self._clock()
        pending: dict[str, str] = {}  # dedup key -> latest ack id, emitted in this bundle
        next_position = tracker.current_restriction().start  # records emitted before this bundle
        finalizer.register(lambda: self._finalize(pending))
        while True:
            reason = self._should_stop(start.started_s, watermark)
            if reason:
                _LOG.info("Pub/Sub read of %s stops: %s", s.subscription, reason)
                tracker.try_claim(tracker.current_restriction().stop)  # marks the restriction done
                return
            if self._clock() - bundle_started >= s.bundle_seconds:
                tracker.defer_remainder()  # checkpoint: the runner commits, then finalizes (acks)
                return
            room = tracker.current_restriction().stop - next_position
            if room <= 0:
                tracker.try_claim(tracker.current_restriction().stop)
                return
            received = self._pull(min(s.max_messages, room))
            if not received:
                continue
            self._pulled.inc(len(received))
            keep = self._deduplicate(received, pending)
            if not keep:
                continue
            ack_ids = [r.ack_id for r in keep]
            self._leases.add(ack_ids)
            if not tracker.try_claim(next_position + len(keep) - 1):
                self._leases.nack(ack_ids)  # the runner split the restriction away: hand them back
                return
            next_position += len(keep)
            for r in keep:
                pending[self._key(r.message)] = r.ack_id
            messages = [r.message for r in keep]
            times = [event_time_ms(m, s.timestamp_attribute) for m in messages]
            watermark.record_pull(times)
            _LOG.info("Pub/Sub: pulled %d messages from %s (unacked until finalization)", len(keep), s.subscription)
            batch = RawBatch(
                source=s.subscription,
                records=[bytes(m.data) for m in messages],
                positions=[m.message_id for m in messages],
                arrival_ms=[_publish_ms(m) for m in messages],
            )
            yield TimestampedValue(batch, Timestamp(micros=min(times) * 1000))

    def _key(self, message: Any) -> str:
        label = self._settings.id_label
        if label and label in message.attributes:
            return f"label:{message.attributes[label]}"
        return message.message_id

    def _deduplicate(self, received: list[Any], pending: dict[str, str]) -> list[Any]:
        """Drops redeliveries: of messages already acked (ack again), or still in this bundle
        (keep the newest ack id, the only one Pub/Sub honours)."""
        keep, seen, stale = [], set(), []
        for r in received:
            key = self._key(r.message)
            if key in self._committed:
                stale.append(r.ack_id)
            elif key in pending:
                self._leases.release([pending[key]])
                self._leases.add([r.ack_id])
                pending[key] = r.ack_id
            elif key in seen:
                stale.append(r.ack_id)
            else:
                seen.add(key)
                keep.append(r)
        if stale:
            self._duplicates.inc(len(stale))
            self._acknowledge(stale)
        if len(keep) + len(stale) < len(received):
            self._duplicates.inc(len(received) - len(keep) - len(stale))
        return keep


class _UnboundedPullFn(_PullFn):
    """The same reader, declared unbounded (no --max_records/--max_read_time/--pubsub_stop_when_idle)."""

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        start: ReadStart,
        finalizer: Any = beam.DoFn.BundleFinalizerParam,  # placeholders must precede the SDF params
        tracker: _PullTracker = beam.DoFn.RestrictionParam(_PullRestrictions()),
        watermark: PubSubWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(_WatermarkProvider()),
    ) -> Iterator[Any]:
        yield from super().process(start, finalizer, tracker, watermark)


def make_pull_fn(
    settings: ReadSettings, clock: Clock = time.time, client_factory: Callable[[], Any] | None = None
) -> _PullFn:
    """The reader DoFn: declared unbounded unless a bounded mode is set."""
    cls = _PullFn if settings.bounded else _UnboundedPullFn
    return cls(settings, clock, client_factory or _default_subscriber)


# --------------------------------------------------------------------------- subscriptions


def create_owned_subscription(topic: str, ack_deadline_s: int, client: Any = None) -> str:
    """A fresh subscription to `topic` for one job, with a one-day expiration as crash cleanup."""
    client = client or pubsub_v1.SubscriberClient()
    path = parse_pubsub_path(topic, "topic")
    name = f"projects/{path.project}/subscriptions/{path.name[:200]}-job-{uuid.uuid4().hex[:12]}"
    client.create_subscription(
        request={
            "name": name,
            "topic": path.path,
            "ack_deadline_seconds": ack_deadline_s,
            "expiration_policy": {"ttl": {"seconds": _OWNED_SUBSCRIPTION_TTL_S}},
        }
    )
    return name


def delete_subscription(name: str, client: Any = None) -> None:
    client = client or pubsub_v1.SubscriberClient()
    try:
        client.delete_subscription(subscription=name)
    except gexc.NotFound:
        pass


def _delete_at_exit(name: str) -> None:
    try:
        delete_subscription(name)
    except Exception as err:  # noqa: BLE001 - exit cleanup must not mask the job's own outcome
        _LOG.warning("could not delete job subscription %s (it expires in a day): %s", name, err)


# --------------------------------------------------------------------------- public transforms


def _is_dataflow(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__ if runner else ""
    return "dataflow" in name.lower()


def _messages_to_batch(messages: list[Any], source: str) -> RawBatch:
    return RawBatch(
        source=source,
        records=[bytes(m.data) for m in messages],
        positions=[m.message_id or "" for m in messages],
        arrival_ms=[int(m.publish_time.timestamp() * 1000) if m.publish_time else 0 for m in messages],
    )


class ReadFromPubSub(beam.PTransform):
    """Pub/Sub -> RawBatches. `subscription` or `topic` (projects/P/...); on a topic the job
    creates its own subscription. `native=None` picks Beam's built-in read on Dataflow and
    the portable splittable reader everywhere else."""

    def __init__(
        self,
        subscription: str | None = None,
        topic: str | None = None,
        *,
        id_label: str | None = None,
        timestamp_attribute: str | None = None,
        max_records: int | None = None,
        max_read_time: float | None = None,
        stop_when_idle: float | None = None,
        ack_deadline: int = 60,
        max_messages: int = 1000,
        bundle_seconds: float = 10.0,
        idle_watermark: float = 10.0,
        native: bool | None = None,
        ack_after_run: bool = False,
        clock: Clock = time.time,
    ) -> None:
        super().__init__()
        if (subscription is None) == (topic is None):
            raise ValueError("ReadFromPubSub needs exactly one of subscription= or topic=")
        self._subscription = parse_pubsub_path(subscription).path if subscription else None
        self._topic = parse_topic(topic, "topic") if topic else None
        self._native = native
        self._clock = clock
        self._settings = ReadSettings(
            subscription=self._subscription or "",
            max_records=max_records,
            max_read_time_s=max_read_time,
            stop_when_idle_s=stop_when_idle,
            ack_deadline_s=ack_deadline,
            max_messages=max_messages,
            bundle_seconds=bundle_seconds,
            idle_watermark_s=idle_watermark,
            timestamp_attribute=timestamp_attribute,
            id_label=id_label,
            ack_after_run=ack_after_run,
        )
        self._settings.validate()

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        native = self._native if self._native is not None else not _is_dataflow(pbegin.pipeline.options)
        if not native:
            return self._expand_dataflow(pbegin)
        settings = self._settings
        if self._topic:
            name = create_owned_subscription(self._topic, settings.ack_deadline_s)
            atexit.register(_delete_at_exit, name)
            _LOG.info("Pub/Sub: reading %s through job subscription %s", self._topic, name)
            # Acks need not wait for the run: this subscription is the job's own and is deleted
            # when the job ends, so a later run never reads from it.
            settings = replace(settings, subscription=name, ack_after_run=False)
        if settings.ack_after_run:
            positions.PENDING.arm()  # here, in the launching process, before the run starts
        clock = self._clock
        return (
            pbegin
            | "Start" >> beam.Create([None])
            # At run time, not at construction: --max_read_time counts from the read's start.
            | "StartTime" >> beam.Map(lambda _: ReadStart(clock(), settings.max_records, settings.idle_watermark_s))
            | "Pull" >> beam.ParDo(make_pull_fn(settings, clock))
        )

    def _expand_dataflow(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        from apache_beam.io.gcp.pubsub import ReadFromPubSub as BeamReadFromPubSub

        s = self._settings
        if s.bounded:
            _LOG.warning(
                "Dataflow's Pub/Sub read is unbounded: --max_records/--max_read_time/"
                "--pubsub_stop_when_idle are ignored; drain the job to stop it."
            )
        source = self._subscription or self._topic or ""
        return (
            pbegin
            | "ReadPubSub"
            >> BeamReadFromPubSub(
                subscription=self._subscription,
                topic=self._topic,
                with_attributes=True,
                id_label=s.id_label,
                timestamp_attribute=s.timestamp_attribute,
            )
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=s.max_messages)
            | "ToRawBatch" >> beam.Map(_messages_to_batch, source)
        )


def read_settings_from_options(options: PipelineOptions) -> dict[str, Any]:
    """ReadFromPubSub keyword arguments from the CLI options."""
    ps = options.view_as(PubSubOptions)
    an = options.view_as(AnalyticsOptions)
    return {
        "id_label": ps.pubsub_id_label,
        "timestamp_attribute": ps.pubsub_timestamp_attribute,
        "max_records": an.max_records,
        "max_read_time": an.max_read_time,
        "stop_when_idle": ps.pubsub_stop_when_idle,
        "ack_deadline": ps.pubsub_ack_deadline,
        "max_messages": ps.pubsub_max_messages,
        "bundle_seconds": ps.pubsub_bundle_seconds,
        "idle_watermark": ps.pubsub_idle_watermark,
    }


def check_uri(spec: SourceSpec) -> PubSubPath:
    """The subscription or topic of --source pubsub://projects/P/{subscriptions|topics}/NAME."""
    return parse_pubsub_path(spec.uri or f"pubsub://{spec.location}")


def source_from_uri(spec: SourceSpec, options: PipelineOptions) -> beam.PTransform:
    """The read transform for --source pubsub://projects/P/{subscriptions|topics}/NAME."""
    path = check_uri(spec)
    kwargs = read_settings_from_options(options)
    from runners.direct import finalizes_before_writing  # runners import the pipeline's options

    kwargs["ack_after_run"] = finalizes_before_writing(options)
    if path.is_topic:
        return ReadFromPubSub(topic=path.path, **kwargs)
    return ReadFromPubSub(subscription=path.path, **kwargs)


# --------------------------------------------------------------------------- writer


def _as_message(element: Any) -> tuple[bytes, dict[str, str]]:
    if isinstance(element, tuple) and len(element) == 2 and isinstance(element[1], dict):
        data, attributes = element
    else:
        data, attributes = element, {}
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif isinstance(data, dict):
        data = orjson.dumps(data)
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"WriteToPubSub takes bytes, str, dict or (payload, attributes); got {type(data).__name__}")
    return bytes(data), {str(k): str(v) for k, v in attributes.items()}


class _PublishFn(beam.DoFn):
    def __init__(
        self,
        topic: str,
        ordering_key: Callable[[Any], str] | None,
        max_messages: int,
        max_bytes: int,
        max_latency_s: float,
    ) -> None:
        self._topic = topic
        self._ordering_key = ordering_key
        self._batch = (max_messages, max_bytes, max_latency_s)
        self._published = Metrics.counter(NAMESPACE, "pubsub_messages_published")

    def setup(self) -> None:
        max_messages, max_bytes, max_latency = self._batch
        self._publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_messages=max_messages, max_bytes=max_bytes, max_latency=max_latency
            ),
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=self._ordering_key is not None),
        )

    def start_bundle(self) -> None:
        self._futures: list[tuple[Any, str]] = []

    def process(self, element: Any) -> None:
        data, attributes = _as_message(element)
        key = self._ordering_key(element) if self._ordering_key else ""
        future = self._publisher.publish(self._topic, data, ordering_key=key or "", **attributes)
        self._futures.append((future, key or ""))

    def finish_bundle(self) -> None:
        # The bundle succeeds only once Pub/Sub has every message; a failure retries the bundle.
        futures, self._futures = self._futures, []
        failed = None
        for future, key in futures:
            try:
                future.result(timeout=120)
            except Exception as err:  # noqa: BLE001 - re-raised below after resuming ordered keys
                failed = err
                if key:
                    self._publisher.resume_publish(self._topic, key)
        if failed is not None:
            raise failed
        self._published.inc(len(futures))

    def teardown(self) -> None:
        publisher = getattr(self, "_publisher", None)
        if publisher is not None:
            publisher.stop()


class WriteToPubSub(beam.PTransform):
    """Publishes elements (bytes, str, dict as JSON, or (payload, attributes)) to `topic`,
    batched by the client; `ordering_key(element)` turns on ordered delivery per key."""

    def __init__(
        self,
        topic: str,
        ordering_key: Callable[[Any], str] | None = None,
        max_messages: int = 500,
        max_bytes: int = 1_000_000,
        max_latency_s: float = 0.05,
    ) -> None:
        super().__init__()
        self._fn = _PublishFn(parse_topic(topic, "topic"), ordering_key, max_messages, max_bytes, max_latency_s)

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "Publish" >> beam.ParDo(self._fn)
