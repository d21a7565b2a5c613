"""Pub/Sub source that runs on every runner.

`ReadFromPubSub(subscription=...)` reads a subscription; `ReadFromPubSub(topic=...)` creates a
subscription owned by the job, deleted when the run ends (through the run's `AfterRun`; a
one-day expiration policy cleans up after a crash). PUBSUB_EMULATOR_HOST is honoured by the client.

On Dataflow the read is Beam's built-in ReadFromPubSub (with id_label and timestamp_attribute).
Everywhere else it is a splittable DoFn (`_PullFn`, on the shared stream-read core) that pulls
synchronously, emits each pull as one RawBatch, and acknowledges only when the runner finalizes
the bundle, so a crash redelivers instead of losing; leases are extended by a background thread
until then. The writer is in io_connectors/pubsub_writer.py, the leases in pubsub_leases.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

import apache_beam as beam
from apache_beam.io.iobase import RestrictionProgress
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from io_connectors import read_core
from io_connectors.after_run import AfterRun
from io_connectors.metrics import Counter
from io_connectors.pubsub_leases import HeldAcks, LeaseKeeper, OldestUnacked, RecentIds
from io_connectors.read_core import Clock, IdleWatermarkEstimator, SourceMetrics
from io_connectors.records import RawBatch
from io_connectors.timestamps import DecodeError, parse_event_time
from io_connectors.uri import SourceSpec, UriError, redact_uri

LOG = logging.getLogger(__name__)
_UNBOUNDED = 2**62  # the restriction: far more records than any job sees (bounds are the budget's)
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


def check_uri(spec: SourceSpec) -> PubSubPath:
    """The subscription or topic of --source pubsub://projects/P/{subscriptions|topics}/NAME."""
    return parse_pubsub_path(spec.uri or f"pubsub://{spec.location}")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, kw_only=True)
class ReadSettings(read_core.StreamReadSettings):
    """Everything the native reader needs; picklable, so it travels with the DoFn.

    `max_call_s` is --pubsub_bundle_seconds (the reader checkpoints, so the runner finalizes and
    acknowledges, at least this often) and `idle_after_s` is --pubsub_idle_watermark."""

    subscription: str
    max_call_s: float = 10.0
    idle_after_s: float = 10.0
    stop_when_idle_s: float | None = None  # bounded: stop once pulls have found nothing this long
    ack_deadline_s: int = 60
    max_messages: int = 1000
    timestamp_attribute: str | None = None
    id_label: str | None = None
    max_lease_s: float = 600.0  # a lease never finalized (a failed bundle) is released after this
    # Local in-memory DirectRunner: acknowledge when the whole run has succeeded, not on bundle
    # finalization (which that runner does before the windows are written).
    ack_after_run: bool = False

    @property
    def bounded(self) -> bool:
        return super().bounded or self.stop_when_idle_s is not None

    def validate(self) -> None:
        problems = [_named(problem) for problem in self.bound_problems()]
        if not 10 <= self.ack_deadline_s <= 600:
            problems.append(f"--pubsub_ack_deadline {self.ack_deadline_s} must be between 10 and 600 seconds")
        if self.max_messages < 1:
            problems.append(f"--pubsub_max_messages {self.max_messages} must be at least 1")
        if self.stop_when_idle_s is not None and not self.stop_when_idle_s > 0:
            problems.append(f"--pubsub_stop_when_idle {self.stop_when_idle_s} must be a positive number of seconds")
        if problems:
            raise UriError("; ".join(problems) + ".")


# The shared bounds' problems, in the words of the options that set them for Pub/Sub.
_OPTION_NAMES = (
    ("the checkpoint interval", "--pubsub_bundle_seconds"),
    ("the idle watermark delay", "--pubsub_idle_watermark"),
    ("max_records", "--max_records"),
    ("max_read_time", "--max_read_time"),
)


def _named(problem: str) -> str:
    for subject, option in _OPTION_NAMES:
        if problem.startswith(subject):
            return option + problem[len(subject) :]
    return problem


# --------------------------------------------------------------------------- the native reader


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


class PullTracker(OffsetRestrictionTracker):
    """The reader's tracker over record counts. Pub/Sub's pull API tells no backlog, so the work it
    reports remaining is the record budget still open (`max_records`), or 1.0 without one: unknown,
    not none (the subscription's backlog is Cloud Monitoring's num_undelivered_messages)."""

    def __init__(self, restriction: OffsetRange, max_records: int | None = None) -> None:
        super().__init__(restriction)
        self._max_records = max_records

    def current_progress(self) -> RestrictionProgress:
        start, stop = self._range.start, self._range.stop
        next_position = start if self._current_position is None else self._current_position + 1
        if self._last_claim_attempt is not None and self._last_claim_attempt >= stop - 1:
            remaining = 0.0  # the read is over
        elif self._max_records is not None:
            remaining = float(max(self._max_records - next_position, 0))
        else:
            remaining = 1.0
        return RestrictionProgress(completed=float(next_position - start), remaining=remaining)


class _PullFn(read_core.StreamReadFn):
    """Splittable reader of one subscription: element = the subscription, restriction = the range
    of record counts (offset n is the n-th record emitted). Each pull becomes one RawBatch; acks
    wait for bundle finalization, and with `ack_after_run` for the run's success."""

    def __init__(
        self,
        settings: ReadSettings,
        after_run: AfterRun | None = None,
        clock: Clock = time.time,
        client_factory: Callable[[], Any] = _default_subscriber,
    ) -> None:
        super().__init__(settings, clock)
        self._settings: ReadSettings = settings
        self._after_run = after_run  # holds the acks of ack_after_run reads
        self._client_factory = client_factory
        self._pulled = Counter("pubsub_messages_pulled")
        self._duplicates = Counter("pubsub_duplicates_dropped")
        self._acked = Counter("pubsub_messages_acked")

    # ---- RestrictionProvider
    def initial_restriction(self, subscription: str) -> OffsetRange:
        return OffsetRange(0, _UNBOUNDED)

    def create_tracker(self, restriction: OffsetRange) -> PullTracker:
        return PullTracker(restriction, self._settings.max_records)

    def restriction_size(self, subscription: str, restriction: OffsetRange) -> int:
        # What the read may still emit: Pub/Sub's own backlog is not known here.
        limit = self._settings.max_records
        return restriction.size() if limit is None else max(0, limit - restriction.start)

    # ---- DoFn
    def setup(self) -> None:
        super().setup()  # the budget: --max_read_time counts on the reader's (injectable) clock
        s = self._settings
        self._client = self._client_factory()
        self._leases = LeaseKeeper(self._client, s.subscription, s.ack_deadline_s, s.max_lease_s, self._clock)
        self._committed = RecentIds()
        # source_lag_ms: the age of the oldest message pulled and not yet acknowledged (finalized);
        # Pub/Sub tells no backlog in records, so source_backlog_records is not reported.
        self._metrics = SourceMetrics(self._clock)
        self._unacked = OldestUnacked(s.max_lease_s, self._clock)

    def teardown(self) -> None:
        self._leases.close()

    def process(
        self,
        subscription: str,
        finalizer: Any = beam.DoFn.BundleFinalizerParam,  # placeholders must precede the SDF params
        tracker: OffsetRestrictionTracker = beam.DoFn.RestrictionParam(),
        watermark: IdleWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(),
    ) -> Iterator[Any]:
        s = self._settings
        if watermark.watermark_ms() is None:
            watermark.idle()  # a reader that never saw a message is quiet from its first look
        call_started = self._clock()
        pending: dict[str, str] = {}  # dedup key -> latest ack id, emitted in this bundle
        position = tracker.current_restriction().start  # records emitted before this call

        def claim(_received: Any) -> bool:
            nonlocal position
            if not tracker.try_claim(position):
                return False
            position += 1
            return True

        finalizer.register(lambda: self._finalize(pending))
        while True:
            self._metrics.lag(s.subscription, self._unacked.age_ms())
            self._metrics.watermark(s.subscription, watermark)
            reason = self._stop_reason(watermark)
            if reason:
                LOG.info("Pub/Sub read of %s stops: %s", s.subscription, reason)
                tracker.try_claim(tracker.current_restriction().stop)  # marks the restriction done
                return
            if self._clock() - call_started >= s.max_call_s:
                tracker.defer_remainder()  # checkpoint: the runner commits, then finalizes (acks)
                return
            received = self._pull(self._room())
            keep = self._deduplicate(received, pending) if received else []
            if not keep:
                watermark.idle()  # caught up: nothing new arrived
                continue
            ack_ids = [r.ack_id for r in keep]
            self._leases.add(ack_ids)
            claimed, budget_spent = read_core.claim_within_budget(keep, self._budget, claim)
            if len(claimed) < len(keep):
                self._leases.nack(ack_ids[len(claimed) :])  # not ours to emit: hand them back
            if claimed:
                yield self._emitted(claimed, pending, watermark)
            if len(claimed) < len(keep) and not budget_spent:
                # The runner split the restriction away: its residual reads on.
                return

    def _stop_reason(self, watermark: IdleWatermarkEstimator) -> str | None:
        s = self._settings
        if read_core.stop_requested():
            return "stop requested"
        if self._budget.spent:
            return "max_records"
        if self._budget.past_deadline():
            return "max_read_time"
        if s.stop_when_idle_s is not None and watermark.quiet_seconds() >= s.stop_when_idle_s:
            return "drained"
        return None

    def _room(self) -> int:
        """Messages to ask for: no more than the budget still grants, so that none is pulled only
        to be handed back."""
        room = self._budget.take(self._settings.max_messages)
        self._budget.give_back(room)
        return room

    def _pull(self, count: int) -> list[Any]:
        if count < 1:
            return []
        try:
            response = self._client.pull(
                subscription=self._settings.subscription, max_messages=count, timeout=_PULL_TIMEOUT_S
            )
        except (gexc.DeadlineExceeded, gexc.ServiceUnavailable) as err:
            LOG.info("Pub/Sub pull returned nothing (%s)", type(err).__name__)
            return []
        self._pulled.inc(len(response.received_messages))
        return list(response.received_messages)

    def _emitted(self, claimed: list[Any], pending: dict[str, str], watermark: IdleWatermarkEstimator) -> Any:
        """The batch of the claimed messages, stamped with their oldest event time."""
        s = self._settings
        for r in claimed:
            pending[self._key(r.message)] = r.ack_id
        messages = [r.message for r in claimed]
        times = [event_time_ms(m, s.timestamp_attribute) for m in messages]
        watermark.observe(min(times))
        LOG.info("Pub/Sub: pulled %d messages from %s (unacked until finalization)", len(claimed), s.subscription)
        batch = RawBatch(
            source=s.subscription,
            records=[bytes(m.data) for m in messages],
            positions=[m.message_id for m in messages],
            arrival_ms=[_publish_ms(m) for m in messages],
        )
        self._unacked.pulled(id(pending), min(batch.arrival_ms))
        self._metrics.claimed(len(claimed), sum(map(len, batch.records)))
        return TimestampedValue(batch, Timestamp(micros=min(times) * 1000))

    def _finalize(self, pending: dict[str, str]) -> None:
        """Runs when the runner has committed this bundle's output: only now acknowledge."""
        self._unacked.acknowledged(id(pending))
        self._metrics.lag(self._settings.subscription, self._unacked.age_ms())
        if not pending:
            return
        self._acknowledge(list(pending.values()))
        self._committed.add_all(pending.keys())
        self._acked.inc(len(pending))
        if self._settings.ack_after_run:
            LOG.info("Pub/Sub: bundle of %d messages finalized; acknowledged when the run succeeds", len(pending))
        else:
            LOG.info("Pub/Sub: acknowledged %d messages on bundle finalization", len(pending))

    def _acknowledge(self, ack_ids: list[str]) -> None:
        s = self._settings
        if not s.ack_after_run:
            self._leases.ack(ack_ids)
            return
        self._leases.release(ack_ids)
        held = self._after_run.hold(  # type: ignore[union-attr] - ReadFromPubSub requires it
            f"pubsub-acks:{s.subscription}", lambda: HeldAcks(self._client_factory(), s.subscription, s.ack_deadline_s)
        )
        held.add(ack_ids)

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


UnboundedPullFn = read_core.unbounded(_PullFn)  # no --max_records/--max_read_time/--pubsub_stop_when_idle


def make_pull_fn(
    settings: ReadSettings,
    after_run: AfterRun | None = None,
    clock: Clock = time.time,
    client_factory: Callable[[], Any] | None = None,
) -> _PullFn:
    """The reader DoFn: declared unbounded unless a bounded mode is set."""
    cls = _PullFn if settings.bounded else UnboundedPullFn
    return cls(settings, after_run, clock, client_factory or _default_subscriber)


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


class OwnedSubscription:
    """The job's own subscription of a topic source, held by the run's AfterRun: deleted when the
    run ends, whether it succeeded (`commit`) or not (`close`), since no later run reads it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def commit(self) -> None:
        self.close()

    def close(self) -> None:
        try:
            delete_subscription(self.name)
        except Exception as err:  # noqa: BLE001 - cleanup must not mask the job's own outcome
            LOG.warning("could not delete job subscription %s (it expires in a day): %s", self.name, err)


# --------------------------------------------------------------------------- the transform


def _on_dataflow(runner: object) -> bool:
    return "dataflow" in type(runner).__name__.lower()


def _messages_to_batch(messages: list[Any], source: str) -> RawBatch:
    return RawBatch(
        source=source,
        records=[bytes(m.data) for m in messages],
        positions=[m.message_id or "" for m in messages],
        arrival_ms=[int(m.publish_time.timestamp() * 1000) if m.publish_time else 0 for m in messages],
    )


class ReadFromPubSub(beam.PTransform):
    """Pub/Sub -> RawBatches. `subscription` or `topic` (projects/P/...); on a topic the job
    creates its own subscription. `native=None` picks Beam's built-in read on a Dataflow runner
    and the portable splittable reader everywhere else.

    `after_run` is the run's AfterRun: it deletes a topic source's own subscription when the run
    ends and, with `ack_after_run`, acknowledges the finalized messages once the run succeeded.
    Both need it; the code that runs the job commits it (io_connectors.after_run.run_and_commit)."""

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
        after_run: AfterRun | None = None,
        clock: Clock = time.time,
    ) -> None:
        super().__init__()
        if (subscription is None) == (topic is None):
            raise ValueError("ReadFromPubSub needs exactly one of subscription= or topic=")
        if ack_after_run and after_run is None:
            raise ValueError(
                "ReadFromPubSub(ack_after_run=True) holds acknowledgements until the run succeeds: pass "
                "after_run=AfterRun() and finish the run with io_connectors.after_run.run_and_commit(result, after_run)"
            )
        self._subscription = parse_pubsub_path(subscription).path if subscription else None
        self._topic = parse_topic(topic, "topic") if topic else None
        self._native = native
        self._after_run = after_run
        self._clock = clock
        self._settings = ReadSettings(
            subscription=self._subscription or "",
            max_records=max_records,
            max_read_time_s=max_read_time,
            stop_when_idle_s=stop_when_idle,
            ack_deadline_s=ack_deadline,
            max_messages=max_messages,
            max_call_s=bundle_seconds,
            idle_after_s=idle_watermark,
            timestamp_attribute=timestamp_attribute,
            id_label=id_label,
            ack_after_run=ack_after_run,
            read_id=f"pubsub-{uuid.uuid4().hex}",  # this read's own record budget and deadline
        )
        self._settings.validate()

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        native = self._native if self._native is not None else not _on_dataflow(pbegin.pipeline.runner)
        if not native:
            return self._expand_dataflow(pbegin)
        settings = self._settings
        if self._topic:
            if self._after_run is None:
                raise ValueError(
                    "ReadFromPubSub(topic=...) reads through a subscription of the job's own, deleted when the run "
                    "ends: pass after_run=AfterRun() and finish the run with io_connectors.after_run.run_and_commit"
                    "(result, after_run), or read an existing subscription="
                )
            name = create_owned_subscription(self._topic, settings.ack_deadline_s)
            self._after_run.hold(f"pubsub-subscription:{name}", lambda: OwnedSubscription(name))
            LOG.info("Pub/Sub: reading %s through job subscription %s", self._topic, name)
            # Acks need not wait for the run: this subscription is the job's own and is deleted
            # when the run ends, so a later run never reads from it.
            settings = replace(settings, subscription=name, ack_after_run=False)
        return (
            pbegin
            | "Start" >> beam.Create([settings.subscription])
            | "Pull" >> beam.ParDo(make_pull_fn(settings, self._after_run, self._clock))
        )

    def _expand_dataflow(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        from apache_beam.io.gcp.pubsub import ReadFromPubSub as BeamReadFromPubSub

        s = self._settings
        if s.bounded:
            LOG.warning(
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
