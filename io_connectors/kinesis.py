"""Amazon Kinesis Data Streams: a native-Python splittable reader.

    Impulse -> stream name -> shard discovery (kinesis_discovery: emits each shard once, parents
    before children) -> Reshuffle (unbounded reads) -> _ReadShard (one reader per shard:
    restriction = position in the shard, watermark from arrival or event time) -> KinesisBatch
    (one GetRecords page)

`ReadFromKinesis` takes explicit arguments (the fields of `KinesisReadConfig`);
pipelines/adapters/kinesis.py maps the command line onto them. The budget, the idle watermark,
the claim loop and the unbounded declaration come from io_connectors.read_core. Loading a stream
for tests and benchmarks: io_connectors.kinesis_producer.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import replace
from typing import Any, Iterable, Iterator, Sequence

import apache_beam as beam
import orjson
from apache_beam import coders
from apache_beam.io.iobase import RestrictionTracker
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from io_connectors import kinesis_kpl, positions
from io_connectors.after_run import AfterRun
from io_connectors.kinesis_client import (
    THROTTLING_ERRORS,
    UNAVAILABLE_LIMIT_S,
    KinesisError,
    StreamNotFound,
    error_code,
    is_unavailable,
    list_shards,
    make_client,
)
from io_connectors.kinesis_core import (
    ADOPT,
    BEHIND,
    SHARD_END,
    SHARDS,
    STOP,
    WHOLE,
    Backoff,
    KinesisBatch,
    KinesisReadConfig,
    KinesisShard,
    ShardRestriction,
    ShardTracker,
    StartPosition,
    UserRecordPosition,
    backlog_size,
    resume_text,
)
from io_connectors.kinesis_discovery import DiscoveryState, discover_shards, plan_shards
from io_connectors.metrics import Counter
from io_connectors.read_core import IdleWatermarkEstimator, SourceMetrics, StreamReadFn, claim_within_budget, unbounded
from io_connectors.timestamps import DecodeError, parse_event_time
from io_connectors.uri import SOURCE_PARAMS, SourceSpec, UriError

__all__ = ["KinesisError", "KinesisReadConfig", "KinesisShard", "ReadFromKinesis", "StreamNotFound", "check_uri",
           "event_times_ms"]

LOG = logging.getLogger(__name__)

MIN_CALL_INTERVAL_S = 0.2  # a shard serves 5 GetRecords calls per second
IDLE_LAG_S = 2.0  # an idle shard's watermark trails the clock by this much (absorbs clock skew)


def _arrival_ms(record: dict[str, Any]) -> int:
    stamp = record.get("ApproximateArrivalTimestamp")  # a datetime, as botocore parses it
    return int(stamp.timestamp() * 1000) if stamp is not None else 0


def event_times_ms(records: Iterable[bytes], field: str, unit: str = "ms") -> list[int]:
    """Event times (epoch millis) of the records that carry a usable one; others are skipped."""
    times = []
    for data in records:
        try:
            record = orjson.loads(data)
            times.append(parse_event_time(record[field], field, unit))
        except (orjson.JSONDecodeError, DecodeError, KeyError, TypeError):
            continue
    return times


class _ReadShard(StreamReadFn):
    """Reads one shard: claims each record's sequence number before emitting its page.

    A spare reader (shard id "") adopts a shard created after a bounded read's listing. A child
    shard waits until its parents are finished. A call returns at the shard's end, when the
    read is over, after an empty page (to poll again later) or after `max_call_s` (a checkpoint).
    """

    _settings: KinesisReadConfig

    def __init__(self, config: KinesisReadConfig, after_run: AfterRun | None = None) -> None:
        super().__init__(config, idle_lag_s=IDLE_LAG_S)
        self._after_run = after_run

    # ---- RestrictionProvider
    def initial_restriction(self, shard: KinesisShard) -> ShardRestriction:
        start = shard.start
        if self._settings.position_store and shard.shard_id:
            # --resume: continue right after the last position a successful run committed.
            stored = positions.load_positions(self._settings.position_store).get(shard.shard_id)
            if stored is not None:
                start = StartPosition.resume(stored)
        return ShardRestriction(start, shard_id=shard.shard_id or None, parents=tuple(shard.parents))

    def create_tracker(self, restriction: ShardRestriction) -> ShardTracker:
        return ShardTracker(restriction)

    def restriction_size(self, shard: KinesisShard, restriction: ShardRestriction) -> float:
        return backlog_size(restriction.backlog_ms)

    def restriction_coder(self) -> coders.Coder:
        return coders.PickleCoder()  # sequence numbers are 128-bit ints

    # ---- DoFn
    def setup(self) -> None:
        super().setup()
        self._client = make_client(self._settings.region, self._settings.endpoint_url)
        # source_lag_ms is MillisBehindLatest; Kinesis tells no backlog in records (docs/kinesis.md).
        self._metrics = SourceMetrics(self._clock)
        self._throttled = Counter("kinesis_throttled_calls")
        self._expired = Counter("kinesis_expired_iterators")
        self._outside = Counter("kinesis_kpl_records_outside_shard")
        self._hash_ranges: dict[str, kinesis_kpl.HashRange] = {}
        self._backoff = Backoff()
        # Open iterators by (shard, resume position): a resumed restriction reuses the
        # iterator its checkpoint left instead of calling GetShardIterator again.
        self._iterators: dict[tuple[str, StartPosition], str] = {}
        self._last_call: dict[str, float] = {}
        self._waiting_since: dict[str, float] = {}
        self._unavailable_since: dict[str, float] = {}
        self._last_listing = 0.0

    def process(
        self,
        element: KinesisShard,
        tracker: RestrictionTracker = beam.DoFn.RestrictionParam(),
        estimator: IdleWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(),
    ) -> Iterator[Any]:
        config = self._settings
        restriction: ShardRestriction = tracker.current_restriction()
        shard = KinesisShard(element.stream, restriction.shard_id or "", restriction.parents, restriction.start)
        if self._budget.over:
            self._finish(tracker, shard, STOP)
            return
        if restriction.shard_id is None:
            shard = self._adopt(element.stream, tracker)
            if shard is None:
                return
        if not self._parents_finished(shard):
            tracker.defer_remainder(Duration(seconds=config.poll_interval_s))
            return
        resume = restriction.start
        iterator = self._iterators.pop((shard.shard_id, resume), None)
        call_ends = time.monotonic() + config.max_call_s
        while True:
            self._pace(shard.shard_id)
            try:
                if iterator is None:
                    iterator = self._client.get_shard_iterator(
                        StreamName=shard.stream, ShardId=shard.shard_id, **resume.iterator_args())["ShardIterator"]
                response = self._client.get_records(ShardIterator=iterator, Limit=config.records_per_call)
            except Exception as err:  # noqa: BLE001 - botocore errors of either call; classified in _retry_delay
                delay = self._retry_delay(shard, resume, err)
                if delay is None:
                    iterator = None  # expired: re-open right after the last claimed record
                    continue
                self._park(shard, resume, iterator)
                tracker.defer_remainder(Duration(seconds=delay))
                return
            self._backoff.success(shard.shard_id)
            if self._unavailable_since.pop(shard.shard_id, None) is not None:
                LOG.warning("kinesis: shard %s: endpoint available again", shard.shard_id)
            records = response.get("Records", [])
            iterator = response.get("NextShardIterator")
            behind = response.get("MillisBehindLatest")
            split = f"{shard.stream}/{shard.shard_id}"
            if behind is not None:
                self._metrics.lag(split, behind)
                if not records:
                    tracker.try_claim((BEHIND, behind))  # the runner's backlog: claims nothing
            if records:
                entries = self._user_records(shard, records, restriction.start) if config.deaggregate else records
                # Claim before emit: a checkpoint taken meanwhile makes a claim fail.
                claimed = claim_within_budget(
                    entries, self._budget, lambda r, lag=behind: tracker.try_claim(_claim_position(r, lag))
                )
                if claimed.records:
                    resume = StartPosition.after(claimed.records[-1]["SequenceNumber"])
                    for run in kinesis_kpl.runs(claimed.records):
                        yield self._emit(shard, run, estimator)
                    self._metrics.watermark(split, estimator)
                if len(claimed.records) < len(entries):
                    if claimed.budget_spent:
                        self._finish(tracker, shard, STOP)  # the --max_records budget is spent
                    return  # otherwise a checkpoint cut the restriction: its residual resumes
            if iterator is None:
                self._finish(tracker, shard, SHARD_END)  # closed shard, fully read
                LOG.info("kinesis: shard %s/%s finished (closed)", shard.stream, shard.shard_id)
                return
            if self._budget.over:
                self._finish(tracker, shard, STOP)
                return
            if not records:
                if config.read_to_latest and not behind:
                    self._finish(tracker, shard, STOP)  # caught up with the shard's end
                    return
                if not behind:
                    estimator.idle()
                    self._metrics.watermark(split, estimator)
                self._park(shard, resume, iterator)
                tracker.defer_remainder(Duration(seconds=config.poll_interval_s))
                return
            if time.monotonic() >= call_ends:
                self._park(shard, resume, iterator)
                tracker.defer_remainder()
                return

    def _emit(self, shard: KinesisShard, records: Sequence[dict[str, Any]],
              estimator: IdleWatermarkEstimator) -> TimestampedValue:
        """The claimed page as one batch, stamped no earlier than the watermark before it."""
        config = self._settings
        final = records[-1]
        last = resume_text(final["SequenceNumber"], final.get("SubSequenceNumber"), final.get("LastInRecord", True))
        if config.position_store and self._after_run is not None:
            self._after_run.record(config.position_store, shard.shard_id, last)
        LOG.debug("kinesis: shard %s claimed %d records up to %s", shard.shard_id, len(records), last)
        batch = KinesisBatch(
            f"kinesis://{shard.stream}/{shard.shard_id}",
            [r["Data"] for r in records],
            positions=[kinesis_kpl.position(r) for r in records],
            arrival_ms=[_arrival_ms(r) for r in records],
            partition_keys=[r.get("PartitionKey") for r in records],
            shard_id=shard.shard_id,
        )
        if config.watermark == "event_time":
            times = event_times_ms(batch.records, config.event_time_field, config.event_time_unit)
        else:
            times = batch.arrival_ms
        before = estimator.watermark_ms() or 0
        bound = min(times) if times else None
        estimator.observe(bound)
        self._metrics.claimed(len(records), sum(map(len, batch.records)))
        stamp_ms = max(before, bound) if bound is not None else (estimator.watermark_ms() or 0)
        return TimestampedValue(batch, Timestamp(micros=max(stamp_ms, 0) * 1000))

    def _user_records(self, shard: KinesisShard, records: list[dict[str, Any]],
                      start: StartPosition) -> list[dict[str, Any]]:
        """The page with each KPL aggregate split into its user records; after a checkpoint (or a
        --resume) inside an aggregate, without the user records read before it."""
        entries = kinesis_kpl.deaggregate(records, lambda: self._hash_range(shard),
                                          lambda record, count: self._dropped_outside(shard, record, count))
        floor = start.floor_key() if start.sub_through is not None else None
        if floor is not None:
            entries = [r for r in entries if _claim_key(r) > floor]
        return entries

    def _hash_range(self, shard: KinesisShard) -> kinesis_kpl.HashRange | None:
        """The shard's hash key range (listed once per worker, when an aggregate first needs it)."""
        if shard.shard_id not in self._hash_ranges:
            try:
                listing = list_shards(self._client, shard.stream)
            except Exception as err:  # noqa: BLE001 - botocore errors: keep the records, look again next time
                LOG.warning("kinesis: cannot list the hash key ranges of %s (%s); keeping this page's KPL user "
                            "records without the shard check", shard.stream, err)
                return None
            for listed in listing:
                keys = listed["HashKeyRange"]
                self._hash_ranges[listed["ShardId"]] = (int(keys["StartingHashKey"]), int(keys["EndingHashKey"]))
        return self._hash_ranges.get(shard.shard_id)

    def _dropped_outside(self, shard: KinesisShard, record: dict[str, Any], count: int) -> None:
        self._outside.inc(count)
        LOG.warning("kinesis: shard %s: KPL aggregate %s holds user records hashed outside the shard (put with a "
                    "stale shard map; its producer puts them again to their shard): its %d user records are "
                    "skipped, as KCL does", shard.shard_id, record["SequenceNumber"], count)

    def _retry_delay(self, shard: KinesisShard, resume: StartPosition, err: Exception) -> float | None:
        """Seconds to wait before reading `shard` again after `err`; None to re-open its iterator
        now. Raises what no wait can fix."""
        code = error_code(err)
        if code in THROTTLING_ERRORS:
            delay = self._backoff.failure(shard.shard_id)
            self._throttled.inc()
            LOG.warning("kinesis: shard %s throttled (%s, attempt %d); backing off %.2f s",
                        shard.shard_id, code, self._backoff.attempts(shard.shard_id), delay)
            return delay
        if is_unavailable(err):
            self._wait_for_endpoint(shard, err)
            return self._backoff.failure(shard.shard_id)
        if code == "ExpiredIteratorException":
            self._expired.inc()
            LOG.info("kinesis: iterator of shard %s expired; re-opening at %s", shard.shard_id, resume)
            return None
        self._raise_if_gone(err, shard)
        raise err

    def _park(self, shard: KinesisShard, resume: StartPosition, iterator: str | None) -> None:
        """Keeps the open iterator for the residual that resumes at `resume`."""
        if iterator is not None:
            self._iterators[(shard.shard_id, resume)] = iterator

    def _finish(self, tracker: RestrictionTracker, shard: KinesisShard, how: str) -> None:
        if tracker.try_claim(how) and shard.shard_id:
            SHARDS.mark_finished(self._settings.read_id, shard.shard_id)

    def _adopt(self, stream: str, tracker: RestrictionTracker) -> KinesisShard | None:
        """For a spare reader: the shard it adopts now, or None after it stopped or deferred."""
        config = self._settings
        if config.read_to_latest and SHARDS.all_finished(config.read_id):
            self._finish(tracker, KinesisShard(stream, ""), STOP)
            return None
        adopted = self._new_shard(stream)
        if adopted is None:
            tracker.defer_remainder(Duration(seconds=config.poll_interval_s))
            return None
        if not tracker.try_claim((ADOPT, adopted.shard_id, adopted.parents)):
            return None
        LOG.info("kinesis: spare reader adopts new shard %s/%s (after %s)", stream, adopted.shard_id,
                 ", ".join(adopted.parents) or "no parent")
        return adopted

    def _new_shard(self, stream: str) -> KinesisShard | None:
        """A shard created since the read's listing, planned as discovery plans a later listing
        (parents first), that no other reader of this read has taken."""
        now = time.monotonic()
        if now - self._last_listing < min(self._settings.discovery_interval_s, 1.0):
            return None
        self._last_listing = now
        try:
            listing = list_shards(self._client, stream)
        except Exception as err:  # noqa: BLE001 - botocore errors; classified here
            if is_unavailable(err):
                return None  # try again at the next poll
            raise
        read_id = self._settings.read_id
        known = DiscoveryState(emitted=frozenset(SHARDS.known(read_id)), polls=1)
        new, _ = plan_shards(listing, known, self._settings, 0)
        return next((shard for shard in new if SHARDS.claim_shard(read_id, shard.shard_id)), None)

    def _parents_finished(self, shard: KinesisShard) -> bool:
        pending = [p for p in shard.parents if not SHARDS.is_finished(self._settings.read_id, p)]
        if not pending:
            self._waiting_since.pop(shard.shard_id, None)
            return True
        since = self._waiting_since.setdefault(shard.shard_id, time.monotonic())
        if time.monotonic() - since >= self._settings.parent_wait_s:
            # Parents read by another worker process are not visible here (see docs/kinesis.md).
            LOG.warning("kinesis: shard %s still waits for parent(s) %s after %.0f s; reading it now",
                        shard.shard_id, ", ".join(pending), self._settings.parent_wait_s)
            return True
        return False

    def _raise_if_gone(self, err: Exception, shard: KinesisShard) -> None:
        if error_code(err) == "ResourceNotFoundException":
            raise StreamNotFound(
                f"Kinesis stream {shard.stream!r} (shard {shard.shard_id}) no longer exists: was it deleted? "
                "Recreate it or point --source at another stream."
            ) from err

    def _wait_for_endpoint(self, shard: KinesisShard, err: Exception) -> None:
        """Notes an unanswered call; raises once the endpoint has been away for too long."""
        since = self._unavailable_since.setdefault(shard.shard_id, time.monotonic())
        away = time.monotonic() - since
        LOG.warning("kinesis: shard %s: endpoint unavailable (%s) for %.1f s; retrying", shard.shard_id,
                    type(err).__name__, away)
        if away > UNAVAILABLE_LIMIT_S:
            raise KinesisError(
                f"Kinesis endpoint unavailable for {away:.0f} s while reading shard {shard.shard_id} of "
                f"{shard.stream!r} ({type(err).__name__}); check the network and --kinesis_endpoint_url, then "
                "rerun (with --resume to continue after the last committed positions)."
            ) from err

    def _pace(self, shard_id: str) -> None:
        wait = self._last_call.get(shard_id, 0.0) + MIN_CALL_INTERVAL_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_call[shard_id] = time.monotonic()


def _claim_position(record: dict[str, Any], behind: int | None) -> tuple:
    """The tracker position of a fetched record or of a KPL user record."""
    sub = record.get("SubSequenceNumber")
    if sub is None:
        return (int(record["SequenceNumber"]), behind)
    return UserRecordPosition(int(record["SequenceNumber"]), sub, record["LastInRecord"], behind)


def _claim_key(record: dict[str, Any]) -> tuple[int, float]:
    position = _claim_position(record, None)
    return position.key() if isinstance(position, UserRecordPosition) else (position[0], WHOLE)


UnboundedReadShard = unbounded(_ReadShard)


class ReadFromKinesis(beam.PTransform):
    """Reads a Kinesis stream as KinesisBatches (RawBatches of one GetRecords page each).

    `settings` are the fields of `KinesisReadConfig` (bounds, start position, watermark,
    intervals, `max_call_s`, `position_store`). Unbounded unless max_records, max_read_time_s
    or read_to_latest bounds it. With `validate`, a missing stream fails when the pipeline is
    built, not on a worker. A `position_store` (--resume) needs `after_run`: the run's object
    that writes the claimed positions once the run has succeeded.
    """

    def __init__(self, stream: str, region: str | None = None, *, after_run: AfterRun | None = None,
                 validate: bool = True, **settings: Any) -> None:
        super().__init__()
        config = KinesisReadConfig(stream=stream, region=region, **settings)
        if not config.read_id:
            config = replace(config, read_id=uuid.uuid4().hex)
        problems = config.problems()
        if config.position_store and after_run is None:
            problems.append("a position_store needs after_run, which stores the positions once the run succeeded")
        if problems:
            raise ValueError(f"ReadFromKinesis({stream!r}): " + "; ".join(problems) + ".")
        self._config = config
        self._after_run = after_run
        self._validate = validate

    @property
    def config(self) -> KinesisReadConfig:
        return self._config

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        config = self._config
        if self._validate:
            list_shards(make_client(config.region, config.endpoint_url), config.stream)
        if config.position_store and self._after_run is not None:
            source = f"kinesis://{config.stream}" + (f"?region={config.region}" if config.region else "")
            self._after_run.track(config.position_store, source)
        read = (_ReadShard if config.bounded else UnboundedReadShard)(config, self._after_run)
        shards = (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "Stream" >> beam.Map(lambda _, name=config.stream: name)
            | "DiscoverShards" >> beam.ParDo(discover_shards(config))
        )
        if not config.bounded:
            # Spread shards over workers. Not in bounded modes: on a batch runner a shuffle is a
            # barrier, and discovery (which runs until the read is over) would starve the readers.
            shards = shards | "SpreadShards" >> beam.Reshuffle()
        return shards | "ReadShards" >> beam.ParDo(read)


def check_uri(spec: SourceSpec) -> tuple[str, str]:
    """(stream, region) of `kinesis://STREAM?region=R`; UriError naming the fix otherwise."""
    stream = spec.location.strip("/")
    if not stream or "/" in stream:
        raise UriError(f"--source {spec.shown!r} names no single stream; write kinesis://STREAM?region=us-east-1.")
    unknown = sorted(set(spec.params) - set(SOURCE_PARAMS["kinesis"]))
    if unknown:
        raise UriError(f"{spec.shown!r}: unknown parameter(s) {', '.join(unknown)}; only region= is accepted.")
    region = spec.param("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise UriError(
            f"--source {spec.shown!r} names no region; write kinesis://{stream}?region=us-east-1 (or set AWS_REGION)."
        )
    return stream, region
