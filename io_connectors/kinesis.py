"""Amazon Kinesis Data Streams: a native-Python splittable reader and a batching writer.

Reading (`ReadFromKinesis`):

    Impulse -> stream name -> _DiscoverShards (polling SDF: lists shards, emits each shard once,
    parents before children) -> Reshuffle -> _ReadShard (SDF per shard: restriction = position
    in the shard, watermark from arrival or event time) -> KinesisBatch (one GetRecords page)

Writing (`WriteToKinesis`): PutRecords in batches of <= 500 records / 5 MiB, retrying only the
entries that failed, partition key from a field.

Producer CLI (loads a stream for tests and benchmarks):

    python -m io_connectors.kinesis produce --stream S --endpoint-url URL (--from-file F | --synthetic N)

boto3 comes with `pip install '.[aws]'`; it is imported only when a client is made.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import apache_beam as beam
import orjson
from apache_beam import coders
from apache_beam.io.iobase import RestrictionTracker, WatermarkEstimator
from apache_beam.io.watermark_estimators import WatermarkEstimatorProvider
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from io_connectors import positions
from io_connectors.kinesis_core import (
    ADOPT,
    REGISTRY,
    SHARD_END,
    STOP,
    Backoff,
    KinesisBatch,
    ShardRestriction,
    ShardTracker,
    ShardWatermarkEstimator,
    StartPosition,
    WatermarkState,
    backlog_size,
)
from pipelines.adapters.kinesis_options import KinesisOptions, parse_start_timestamp
from io_connectors.uri import SOURCE_PARAMS, SourceSpec, UriError, parse_sink

LOG = logging.getLogger(__name__)
NAMESPACE = "kinesis"

GET_RECORDS_LIMIT = 10_000  # Kinesis' cap per GetRecords call
PUT_RECORDS_MAX_COUNT = 500  # ... and per PutRecords call
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # data + partition key of one record
MIN_CALL_INTERVAL_S = 0.2  # a shard serves 5 GetRecords calls per second
THROTTLING_ERRORS = frozenset(
    {"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"}
)


# Server-side failures worth waiting out (an endpoint restarting, a 5xx), as opposed to errors
# in the request; connection errors are recognised by type in `is_unavailable`.
UNAVAILABLE_ERRORS = frozenset({"InternalFailure", "InternalServerError", "ServiceUnavailable"})
UNAVAILABLE_LIMIT_S = 300.0  # give up, with a clear error, after this long without an answer


def is_unavailable(err: Exception) -> bool:
    """True for a refused/dropped/timed-out connection or a 5xx answer: retry later."""
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ModuleNotFoundError:
        return False
    if isinstance(err, (BotoConnectionError, HTTPClientError)):
        return True
    response = getattr(err, "response", None)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) if isinstance(response, dict) else 0
    return _error_code(err) in UNAVAILABLE_ERRORS or status >= 500


class KinesisError(RuntimeError):
    """A Kinesis failure the reader cannot work around; the message says what to check."""


class StreamNotFound(KinesisError):
    """The stream does not exist (never created, deleted, or another region/account)."""


def _require_boto3() -> Any:
    try:
        import boto3
    except ModuleNotFoundError:
        raise KinesisError(
            "The kinesis:// source needs boto3; install it with: pip install '.[aws]'"
        ) from None
    return boto3


def make_client(region: str | None, endpoint_url: str | None, *, sdk_retries: int = 1) -> Any:
    """A Kinesis client. SDK retries are off by default (1 attempt) so that throttling reaches
    the reader's own per-shard backoff, which defers only the throttled shard."""
    boto3 = _require_boto3()
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": sdk_retries, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=32,
    )
    return boto3.client("kinesis", region_name=region, endpoint_url=endpoint_url, config=config)


def _error_code(err: Exception) -> str | None:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def list_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard of the stream (open and closed, within retention), following NextToken."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        try:
            response = client.list_shards(**kwargs)
        except Exception as err:  # noqa: BLE001 - botocore ClientError; re-raised below
            if _error_code(err) == "ResourceNotFoundException":
                raise StreamNotFound(
                    f"Kinesis stream {stream!r} does not exist (deleted, or another region/account/endpoint)."
                ) from err
            raise
        shards.extend(response.get("Shards", []))
        token = response.get("NextToken")
        if not token:
            return shards
        kwargs = {"NextToken": token}


@dataclass(frozen=True)
class KinesisReadConfig:
    """Everything a read needs, fixed at construction (picklable: it travels to workers)."""

    stream: str
    region: str | None = None
    endpoint_url: str | None = None
    start_position: str = "LATEST"
    start_timestamp_ms: int | None = None
    max_records: int | None = None
    max_read_time_s: float | None = None
    read_to_latest: bool = False
    watermark: str = "arrival"
    event_time_field: str = "event_time"
    event_time_unit: str = "ms"
    poll_interval_s: float = 1.0
    discovery_interval_s: float = 10.0
    parent_wait_s: float = 120.0
    records_per_call: int = GET_RECORDS_LIMIT
    max_bundle_s: float = 5.0
    idle_after_ms: int = 2_000
    idle_lag_ms: int = 2_000
    spare_readers: int = 4
    read_id: str = ""
    position_store: str | None = None  # --resume: io_connectors.positions store of this read

    @property
    def bounded(self) -> bool:
        return self.max_records is not None or self.max_read_time_s is not None or self.read_to_latest

    def validate(self) -> list[str]:
        problems = []
        if not self.stream:
            problems.append("the stream name is empty")
        if self.start_position not in ("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"):
            problems.append(f"start position {self.start_position!r} must be LATEST, TRIM_HORIZON or AT_TIMESTAMP")
        if self.start_position == "AT_TIMESTAMP" and self.start_timestamp_ms is None:
            problems.append("AT_TIMESTAMP needs a start timestamp")
        if self.watermark not in ("arrival", "event_time"):
            problems.append(f"watermark {self.watermark!r} must be arrival or event_time")
        if self.max_records is not None and self.max_records <= 0:
            problems.append(f"max_records {self.max_records} must be positive")
        if not 1 <= self.records_per_call <= GET_RECORDS_LIMIT:
            problems.append(f"records_per_call must be within 1..{GET_RECORDS_LIMIT}")
        return problems


class KinesisShard(NamedTuple):
    """One shard to read: the element of the per-shard SDF."""

    stream: str
    shard_id: str
    parents: tuple[str, ...] = ()  # parent shards this read must finish first
    start: StartPosition = StartPosition("TRIM_HORIZON")


# --------------------------------------------------------------------------- shard discovery


class DiscoveryState(NamedTuple):
    """Restriction of the discovery SDF: what has been emitted (or deliberately skipped)."""

    emitted: frozenset = frozenset()
    skipped: frozenset = frozenset()
    polls: int = 0
    finished: bool = False


class _DiscoveryTracker(RestrictionTracker):
    """Claims successive DiscoveryStates; splits only at a checkpoint, whose residual continues
    from the last claimed state (so no shard is emitted twice or forgotten)."""

    def __init__(self, restriction: DiscoveryState) -> None:
        self._restriction = restriction
        self._claimed = restriction
        self._stopped = restriction.finished

    def current_restriction(self) -> DiscoveryState:
        return self._restriction

    def try_claim(self, position: Any) -> bool:
        if self._stopped:
            return False
        if position == STOP:
            self._stopped = True
            self._restriction = self._claimed._replace(finished=True)
            return True
        if not (position.emitted >= self._claimed.emitted and position.polls > self._claimed.polls):
            raise ValueError(
                f"Discovery states claimed should grow: {position} after {self._claimed}."
            )
        self._claimed = position
        return True

    def try_split(self, fraction_of_remainder: float) -> tuple[DiscoveryState, DiscoveryState] | None:
        if fraction_of_remainder != 0 or self._stopped:
            return None
        self._stopped = True
        self._restriction = self._claimed._replace(finished=True)
        return self._restriction, self._claimed._replace(finished=False)

    def check_done(self) -> None:
        if not self._stopped:
            raise ValueError(f"Shard discovery {self._claimed} must stop or checkpoint before returning.")

    def is_bounded(self) -> bool:
        return self._stopped


def plan_shards(
    shards: Sequence[dict[str, Any]],
    state: DiscoveryState,
    config: KinesisReadConfig,
    now_ms: int,
) -> tuple[list[KinesisShard], DiscoveryState]:
    """Which listed shards to start reading now, and the discovery state after emitting them.

    First listing: LATEST reads open shards from now (pinned as AT_TIMESTAMP so a checkpoint
    before the first record loses nothing) and skips closed ones; TRIM_HORIZON and AT_TIMESTAMP
    read every listed shard. Later listings add shards created by resharding, from their start.
    A shard is emitted only once its listed parents are emitted or skipped, and names the
    emitted ones: its reader waits until they are finished.
    """
    known = set(state.emitted) | set(state.skipped)
    by_id = {s["ShardId"]: s for s in shards}
    first = state.polls == 0
    new: list[KinesisShard] = []
    skipped = set(state.skipped)
    progress = True
    while progress:
        progress = False
        for shard_id, shard in by_id.items():
            if shard_id in known:
                continue
            listed_parents = [
                p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p and p in by_id
            ]
            if any(p not in known for p in listed_parents):
                continue
            closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
            if first and config.start_position == "LATEST":
                if closed:
                    skipped.add(shard_id)
                    known.add(shard_id)
                    progress = True
                    continue
                start = StartPosition("AT_TIMESTAMP", timestamp_ms=now_ms)
            elif first and config.start_position == "AT_TIMESTAMP":
                start = StartPosition("AT_TIMESTAMP", timestamp_ms=config.start_timestamp_ms)
            else:
                start = StartPosition("TRIM_HORIZON")
            parents = tuple(p for p in listed_parents if p not in skipped)
            new.append(KinesisShard(config.stream, shard_id, parents, start))
            known.add(shard_id)
            progress = True
    emitted = frozenset(state.emitted | {s.shard_id for s in new})
    return new, DiscoveryState(emitted, frozenset(skipped), state.polls + 1, False)


class _DiscoverShards(beam.DoFn, RestrictionProvider):
    """Polling SDF over the stream's shard list: re-lists every discovery interval while
    streaming; in a bounded mode it stops once the read is over."""

    def __init__(self, config: KinesisReadConfig) -> None:
        self._config = config

    # RestrictionProvider (runs on a separate copy, before setup(): config only, no client).
    def initial_restriction(self, element: str) -> DiscoveryState:
        return DiscoveryState()

    def create_tracker(self, restriction: DiscoveryState) -> _DiscoveryTracker:
        return _DiscoveryTracker(restriction)

    def restriction_size(self, element: str, restriction: DiscoveryState) -> float:
        return 0.0 if restriction.finished else 1.0

    def restriction_coder(self) -> coders.Coder:
        return coders.PickleCoder()

    def truncate(self, element: str, restriction: DiscoveryState) -> None:
        return None  # on drain, stop discovering

    def setup(self) -> None:
        self._client = make_client(self._config.region, self._config.endpoint_url)

    def process(
        self,
        stream: str,
        tracker: RestrictionTracker = beam.DoFn.RestrictionParam(),
    ) -> Iterator[KinesisShard]:
        yield from self._discover(stream, tracker)

    def _discover(self, stream: str, tracker: RestrictionTracker) -> Iterator[KinesisShard]:
        config = self._config
        state = tracker.current_restriction()
        try:
            shards = list_shards(self._client, stream)  # slow I/O before the claim
        except Exception as err:  # noqa: BLE001 - botocore errors; classified here
            if not (is_unavailable(err) and state.polls > 0):
                raise
            LOG.warning("kinesis: listing shards of %s failed: endpoint unavailable (%s); retrying", stream,
                        type(err).__name__)
            tracker.defer_remainder(Duration(seconds=config.discovery_interval_s))
            return
        new, next_state = plan_shards(shards, state, config, int(time.time() * 1000))
        if not tracker.try_claim(next_state):
            return
        REGISTRY.add_known(config.read_id, next_state.emitted | next_state.skipped)
        for skipped in next_state.skipped:
            REGISTRY.mark_finished(config.read_id, skipped)
        for shard in new:
            LOG.info("kinesis: reading shard %s/%s from %s (after %s)", stream, shard.shard_id, shard.start.kind,
                     ", ".join(shard.parents) or "no parent")
            yield shard
        if config.bounded:
            # A bounded read lists once. On a batch runner the readers start only after this step
            # ends, so shards created by resharding meanwhile go to spare readers, which adopt them.
            for _ in range(config.spare_readers):
                yield KinesisShard(stream, "", (), StartPosition("TRIM_HORIZON"))
            tracker.try_claim(STOP)
            return
        tracker.defer_remainder(Duration(seconds=config.discovery_interval_s))


# --------------------------------------------------------------------------- shard reader


def _arrival_ms(record: dict[str, Any]) -> int:
    stamp = record.get("ApproximateArrivalTimestamp")
    if stamp is None:
        return 0
    if hasattr(stamp, "timestamp"):
        return int(stamp.timestamp() * 1000)
    return int(float(stamp) * 1000)


def event_times_ms(records: Iterable[bytes], field: str, unit: str = "ms") -> list[int]:
    """Event times (epoch millis) of the records that carry a usable one; others are skipped."""
    from transforms.decode import DecodeError, parse_event_time

    times = []
    for data in records:
        try:
            record = orjson.loads(data)
            times.append(parse_event_time(record[field], field, unit))
        except (orjson.JSONDecodeError, DecodeError, KeyError, TypeError):
            continue
    return times


class _ReadShard(beam.DoFn, RestrictionProvider, WatermarkEstimatorProvider):
    """Reads one shard: claims each record's sequence number before emitting its page.

    The DoFn is its own restriction and watermark-estimator provider; those methods run on a
    separately deserialized copy, so they use only the config, never the client.
    """

    def __init__(self, config: KinesisReadConfig) -> None:
        self._config = config
        self._records_read = Metrics.counter(NAMESPACE, "records_read")
        self._throttled = Metrics.counter(NAMESPACE, "throttled_calls")
        self._expired = Metrics.counter(NAMESPACE, "expired_iterators")
        self._backlog = Metrics.gauge(NAMESPACE, "millis_behind_latest")

    # ---- RestrictionProvider
    def initial_restriction(self, shard: KinesisShard) -> ShardRestriction:
        start = shard.start
        if self._config.position_store and shard.shard_id:
            # --resume: continue right after the last position a successful run committed.
            stored = positions.load_positions(self._config.position_store).get(shard.shard_id)
            if stored is not None:
                start = StartPosition.after(stored)
        return ShardRestriction(start, shard_id=shard.shard_id or None, parents=tuple(shard.parents))

    def create_tracker(self, restriction: ShardRestriction) -> ShardTracker:
        return ShardTracker(restriction)

    def split(self, shard: KinesisShard, restriction: ShardRestriction) -> Iterator[ShardRestriction]:
        yield restriction  # a shard is read in order; parallelism comes from shards

    def restriction_size(self, shard: KinesisShard, restriction: ShardRestriction) -> float:
        return backlog_size(restriction.backlog_ms)

    def restriction_coder(self) -> coders.Coder:
        return coders.PickleCoder()

    def truncate(self, shard: KinesisShard, restriction: ShardRestriction) -> None:
        return None  # drain: stop reading; the checkpoint (if any) already holds the position

    # ---- WatermarkEstimatorProvider
    def initial_estimator_state(self, shard: KinesisShard, restriction: ShardRestriction) -> WatermarkState:
        return WatermarkState()

    def create_watermark_estimator(self, state: WatermarkState) -> ShardWatermarkEstimator:
        return ShardWatermarkEstimator(
            state, idle_after_ms=self._config.idle_after_ms, idle_lag_ms=self._config.idle_lag_ms
        )

    def estimator_state_coder(self) -> coders.Coder:
        return coders.PickleCoder()

    # ---- DoFn
    def setup(self) -> None:
        self._client = make_client(self._config.region, self._config.endpoint_url)
        self._backoff = Backoff()
        # Open iterators by (shard, resume position): a resumed restriction reuses the
        # iterator its checkpoint left instead of calling GetShardIterator again.
        self._iterators: dict[tuple[str, StartPosition], str] = {}
        self._last_call: dict[str, float] = {}
        self._waiting_since: dict[str, float] = {}
        self._closed_checked: dict[str, float] = {}
        self._unavailable_since: dict[str, float] = {}

    def _read_over(self) -> bool:
        config = self._config
        return REGISTRY.exhausted(config.read_id, config.max_records) or REGISTRY.past_deadline(
            config.read_id, config.max_read_time_s
        )

    def _finish(self, tracker: RestrictionTracker, shard: KinesisShard, how: str) -> None:
        if tracker.try_claim(how) and shard.shard_id:
            REGISTRY.mark_finished(self._config.read_id, shard.shard_id)

    def _adopt(self, stream: str) -> tuple[str, tuple[str, ...]] | None:
        """For a spare reader: a shard created since the listing whose parents this read knows."""
        now = time.monotonic()
        if now - self._closed_checked.get("", 0.0) < min(self._config.discovery_interval_s, 1.0):
            return None
        self._closed_checked[""] = now
        try:
            listed = {s["ShardId"]: s for s in list_shards(self._client, stream)}
        except Exception as err:  # noqa: BLE001 - botocore errors; classified here
            if is_unavailable(err):
                return None  # try again at the next poll
            raise
        for shard_id in sorted(listed):
            known = REGISTRY.known(self._config.read_id)
            if shard_id in known:
                continue
            parents = [p for p in (listed[shard_id].get("ParentShardId"), listed[shard_id].get("AdjacentParentShardId"))
                       if p and p in listed]
            if any(p not in known for p in parents):
                continue
            if REGISTRY.claim_shard(self._config.read_id, shard_id):
                LOG.info("kinesis: spare reader adopts new shard %s/%s (after %s)", stream, shard_id,
                         ", ".join(parents) or "no parent")
                return shard_id, tuple(parents)
        return None

    def _all_known_finished(self) -> bool:
        known = REGISTRY.known(self._config.read_id)
        return all(REGISTRY.is_finished(self._config.read_id, s) for s in known)

    def _parents_finished(self, shard: KinesisShard) -> bool:
        pending = [p for p in shard.parents if not REGISTRY.is_finished(self._config.read_id, p)]
        if not pending:
            self._waiting_since.pop(shard.shard_id, None)
            return True
        since = self._waiting_since.setdefault(shard.shard_id, time.monotonic())
        if time.monotonic() - since >= self._config.parent_wait_s:
            # Parents read by another worker process are not visible here (see docs/kinesis.md).
            LOG.warning(
                "kinesis: shard %s still waits for parent(s) %s after %.0f s; reading it now",
                shard.shard_id, ", ".join(pending), self._config.parent_wait_s,
            )
            return True
        return False

    def _open_iterator(self, shard: KinesisShard, position: StartPosition) -> str:
        try:
            response = self._client.get_shard_iterator(
                StreamName=shard.stream, ShardId=shard.shard_id, **position.iterator_args()
            )
        except Exception as err:  # noqa: BLE001 - botocore ClientError; classified below
            self._raise_if_gone(err, shard)
            raise
        return response["ShardIterator"]

    def _raise_if_gone(self, err: Exception, shard: KinesisShard) -> None:
        if _error_code(err) == "ResourceNotFoundException":
            raise StreamNotFound(
                f"Kinesis stream {shard.stream!r} (shard {shard.shard_id}) no longer exists: was it deleted? "
                "Recreate it or point --source at another stream."
            ) from err

    def _closed_and_read(self, shard: KinesisShard, last_claimed: int | None) -> bool:
        """For servers that never end a closed shard's iterator (moto): the shard is over when
        the listing shows it closed at or before the last record we claimed."""
        now = time.monotonic()
        if now - self._closed_checked.get(shard.shard_id, 0.0) < self._config.discovery_interval_s:
            return False
        self._closed_checked[shard.shard_id] = now
        try:
            listing = list_shards(self._client, shard.stream)
        except Exception as err:  # noqa: BLE001 - botocore errors; classified here
            if is_unavailable(err):
                return False
            raise
        for listed in listing:
            if listed["ShardId"] != shard.shard_id:
                continue
            ending = listed.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            if ending is None:
                return False
            return int(ending) == 0 or (last_claimed is not None and last_claimed >= int(ending))
        return False

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

    def _batch(self, shard: KinesisShard, records: Sequence[dict[str, Any]]) -> KinesisBatch:
        return KinesisBatch(
            f"kinesis://{shard.stream}/{shard.shard_id}",
            [r["Data"] for r in records],
            positions=[r["SequenceNumber"] for r in records],
            arrival_ms=[_arrival_ms(r) for r in records],
            partition_keys=[r.get("PartitionKey") for r in records],
            shard_id=shard.shard_id,
        )

    def process(
        self,
        shard: KinesisShard,
        tracker: RestrictionTracker = beam.DoFn.RestrictionParam(),
        estimator: WatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(),
    ) -> Iterator[Any]:
        yield from self._read(shard, tracker, estimator)

    def _read(self, element: KinesisShard, tracker: RestrictionTracker, estimator: Any) -> Iterator[Any]:
        config = self._config
        restriction: ShardRestriction = tracker.current_restriction()
        shard = KinesisShard(element.stream, restriction.shard_id or "", restriction.parents, restriction.start)
        if config.bounded and self._read_over():
            self._finish(tracker, shard, STOP)
            return
        if restriction.shard_id is None:
            if config.read_to_latest and self._all_known_finished():
                self._finish(tracker, shard, STOP)
                return
            adopted = self._adopt(element.stream)
            if adopted is None:
                tracker.defer_remainder(Duration(seconds=config.poll_interval_s))
                return
            if not tracker.try_claim((ADOPT, *adopted)):
                return
            restriction = tracker.current_restriction()
            shard = KinesisShard(element.stream, restriction.shard_id, restriction.parents, restriction.start)
        if not self._parents_finished(shard):
            tracker.defer_remainder(Duration(seconds=config.poll_interval_s))
            return
        resume = restriction.start
        last_claimed = resume.floor()
        iterator = self._iterators.pop((shard.shard_id, resume), None)
        slice_ends = time.monotonic() + config.max_bundle_s
        while True:
            self._pace(shard.shard_id)
            try:
                if iterator is None:
                    iterator = self._open_iterator(shard, resume)
                response = self._client.get_records(ShardIterator=iterator, Limit=config.records_per_call)
            except Exception as err:  # noqa: BLE001 - botocore ClientError; classified below
                code = _error_code(err)
                if code in THROTTLING_ERRORS:
                    delay = self._backoff.failure(shard.shard_id)
                    self._throttled.inc()
                    LOG.warning(
                        "kinesis: shard %s throttled (%s, attempt %d); backing off %.2f s",
                        shard.shard_id, code, self._backoff.attempts(shard.shard_id), delay,
                    )
                    if iterator is not None:
                        self._iterators[(shard.shard_id, resume)] = iterator
                    tracker.defer_remainder(Duration(seconds=delay))
                    return
                if is_unavailable(err):
                    self._wait_for_endpoint(shard, err)
                    if iterator is not None:
                        self._iterators[(shard.shard_id, resume)] = iterator
                    tracker.defer_remainder(Duration(seconds=self._backoff.failure(shard.shard_id)))
                    return
                if code == "ExpiredIteratorException":
                    # Re-open right after the last claimed record: nothing re-read, nothing skipped.
                    self._expired.inc()
                    LOG.info("kinesis: iterator of shard %s expired; re-opening at %s", shard.shard_id, resume)
                    iterator = None
                    continue
                self._raise_if_gone(err, shard)
                raise
            self._backoff.success(shard.shard_id)
            if self._unavailable_since.pop(shard.shard_id, None) is not None:
                LOG.warning("kinesis: shard %s: endpoint available again", shard.shard_id)
            records = response.get("Records", [])
            iterator = response.get("NextShardIterator")
            behind = response.get("MillisBehindLatest")
            if behind is not None:
                self._backlog.set(int(behind))
            if records:
                granted = REGISTRY.take(config.read_id, config.max_records, len(records))
                claimed = []
                for record in records[:granted]:
                    # Claim before emit: a checkpoint taken meanwhile makes this return False.
                    if not tracker.try_claim((int(record["SequenceNumber"]), behind)):
                        break
                    claimed.append(record)
                REGISTRY.give_back(config.read_id, granted - len(claimed))
                if claimed:
                    last_claimed = int(claimed[-1]["SequenceNumber"])
                    resume = StartPosition.after(last_claimed)
                    batch = self._batch(shard, claimed)
                    if config.position_store:
                        positions.PENDING.record(config.position_store, shard.shard_id, str(last_claimed))
                    LOG.debug("kinesis: shard %s claimed %d records up to %s", shard.shard_id, len(claimed),
                              last_claimed)
                    if config.watermark == "event_time":
                        times = event_times_ms(batch.records, config.event_time_field, config.event_time_unit)
                    else:
                        times = list(batch.arrival_ms)
                    before = estimator.watermark_ms()
                    estimator.observe_records(times)
                    self._records_read.inc(len(claimed))
                    stamp_ms = max(before, min(times)) if times else estimator.watermark_ms()
                    yield TimestampedValue(batch, Timestamp(micros=max(stamp_ms, 0) * 1000))
                if len(claimed) < len(records):
                    if len(claimed) == granted and granted < len(records):
                        self._finish(tracker, shard, STOP)  # the --max_records budget is spent
                    return  # otherwise a checkpoint cut the restriction: its residual resumes
            if iterator is None:
                self._finish(tracker, shard, SHARD_END)  # closed shard, fully read
                LOG.info("kinesis: shard %s/%s finished (closed)", shard.stream, shard.shard_id)
                return
            if config.bounded and self._read_over():
                self._finish(tracker, shard, STOP)
                return
            if not records:
                if config.read_to_latest and not behind:
                    self._finish(tracker, shard, STOP)  # caught up with the shard's end
                    return
                if self._closed_and_read(shard, last_claimed):
                    self._finish(tracker, shard, SHARD_END)
                    return
                if not behind:
                    estimator.observe_idle()
                self._iterators[(shard.shard_id, resume)] = iterator
                tracker.defer_remainder(Duration(seconds=config.poll_interval_s))
                return
            if time.monotonic() >= slice_ends:
                self._iterators[(shard.shard_id, resume)] = iterator
                tracker.defer_remainder()
                return


class _UnboundedReadShard(_ReadShard):
    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        shard: KinesisShard,
        tracker: RestrictionTracker = beam.DoFn.RestrictionParam(),
        estimator: WatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(),
    ) -> Iterator[Any]:
        yield from self._read(shard, tracker, estimator)


class _UnboundedDiscoverShards(_DiscoverShards):
    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        stream: str,
        tracker: RestrictionTracker = beam.DoFn.RestrictionParam(),
    ) -> Iterator[KinesisShard]:
        yield from self._discover(stream, tracker)


class ReadFromKinesis(beam.PTransform):
    """Reads a Kinesis stream as KinesisBatches (RawBatches of one GetRecords page each).

    Unbounded unless max_records, max_read_time_s or read_to_latest bounds it. With
    `validate`, a missing stream fails when the pipeline is built, not on a worker.
    """

    def __init__(self, stream: str, region: str | None = None, *, validate: bool = True, **settings: Any) -> None:
        super().__init__()
        config = KinesisReadConfig(stream=stream, region=region, **settings)
        if not config.read_id:
            config = replace(config, read_id=uuid.uuid4().hex)
        problems = config.validate()
        if problems:
            raise ValueError(f"ReadFromKinesis({stream!r}): " + "; ".join(problems) + ".")
        self._config = config
        self._validate = validate

    @property
    def config(self) -> KinesisReadConfig:
        return self._config

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        config = self._config
        if self._validate:
            list_shards(make_client(config.region, config.endpoint_url), config.stream)
        discover = _DiscoverShards(config) if config.bounded else _UnboundedDiscoverShards(config)
        read = _ReadShard(config) if config.bounded else _UnboundedReadShard(config)
        shards = (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "Stream" >> beam.Map(lambda _, name=config.stream: name)
            | "DiscoverShards" >> beam.ParDo(discover)
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


def source_from_uri(spec: SourceSpec, options: PipelineOptions) -> ReadFromKinesis:
    """`kinesis://STREAM?region=R` plus the --kinesis_* and bounded-read options."""
    from pipelines.options import AnalyticsOptions

    stream, region = check_uri(spec)
    kinesis = options.view_as(KinesisOptions)
    problems = kinesis.validate_kinesis()
    if problems:
        raise UriError("; ".join(problems) + ".")
    analytics = options.view_as(AnalyticsOptions)
    timestamp_ms = None
    if kinesis.kinesis_start_timestamp:
        timestamp_ms = parse_start_timestamp(kinesis.kinesis_start_timestamp)
    store = None
    if getattr(analytics, "resume", False):
        bounded = analytics.max_records or analytics.max_read_time or kinesis.kinesis_read_to_latest
        try:
            store = positions.resume_store(parse_sink(analytics.output, "--output").path, spec.uri or stream,
                                           bool(bounded), "--kinesis_read_to_latest")
        except positions.PositionStoreError as err:
            raise UriError(str(err)) from None
    return ReadFromKinesis(
        stream,
        region,
        endpoint_url=kinesis.endpoint_url(),
        start_position=kinesis.kinesis_start_position,
        start_timestamp_ms=timestamp_ms,
        max_records=analytics.max_records,
        max_read_time_s=analytics.max_read_time,
        read_to_latest=bool(kinesis.kinesis_read_to_latest),
        watermark=kinesis.kinesis_watermark,
        event_time_field=analytics.event_time_field,
        event_time_unit=analytics.event_time_unit,
        poll_interval_s=kinesis.kinesis_poll_interval,
        discovery_interval_s=kinesis.kinesis_discovery_interval,
        position_store=store,
    )


# --------------------------------------------------------------------------- writer


def partition_key_of(record: Any, field: str | None, fallback: str) -> str:
    """The partition key: `field` of a dict (or of a JSON object's bytes), else `fallback`."""
    if field:
        value = None
        if isinstance(record, dict):
            value = record.get(field)
        else:
            try:
                parsed = orjson.loads(record)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                value = parsed.get(field)
        if value is not None and not isinstance(value, (dict, list)) and str(value):
            return str(value)[:256]
    return fallback


def _as_bytes(record: Any) -> bytes:
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode("utf-8")
    return orjson.dumps(record)


class KinesisPutter:
    """Buffers records and sends them with PutRecords (<= 500 records, <= 5 MiB a call),
    re-sending only the entries that failed, with backoff, up to `max_attempts` times."""

    def __init__(
        self,
        client: Any,
        stream: str,
        max_attempts: int = 10,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._stream = stream
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff(base_s=0.1, cap_s=5.0)
        self._sleep = sleep
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self.sent = 0
        self.retried = 0
        self.calls = 0

    def add(self, data: bytes, partition_key: str) -> None:
        size = len(data) + len(partition_key.encode("utf-8"))
        if size > MAX_RECORD_BYTES:
            raise ValueError(f"a record of {size} bytes exceeds Kinesis' 1 MiB limit (data + partition key)")
        if len(self._pending) >= PUT_RECORDS_MAX_COUNT or self._pending_bytes + size > PUT_RECORDS_MAX_BYTES:
            self.flush()
        self._pending.append({"Data": data, "PartitionKey": partition_key})
        self._pending_bytes += size

    def flush(self) -> None:
        entries, self._pending, self._pending_bytes = self._pending, [], 0
        attempt = 0
        while entries:
            attempt += 1
            self.calls += 1
            try:
                response = self._client.put_records(StreamName=self._stream, Records=entries)
            except Exception as err:  # noqa: BLE001 - botocore ClientError; classified below
                if _error_code(err) not in THROTTLING_ERRORS or attempt >= self._max_attempts:
                    if _error_code(err) == "ResourceNotFoundException":
                        raise StreamNotFound(f"Kinesis stream {self._stream!r} does not exist.") from err
                    raise
                self._sleep(self._backoff.failure("put"))
                continue
            results = response.get("Records", [])
            failed = [entry for entry, result in zip(entries, results, strict=True) if result.get("ErrorCode")]
            self.sent += len(entries) - len(failed)
            if not failed:
                self._backoff.success("put")
                return
            if attempt >= self._max_attempts:
                codes = sorted({r.get("ErrorCode") for r in results if r.get("ErrorCode")})
                raise KinesisError(
                    f"PutRecords to {self._stream!r}: {len(failed)} records still failing after "
                    f"{attempt} attempts ({', '.join(codes)})."
                )
            self.retried += len(failed)
            entries = failed
            self._sleep(self._backoff.failure("put"))


class _WriteBatches(beam.DoFn):
    def __init__(self, stream: str, region: str | None, endpoint_url: str | None, key_field: str | None) -> None:
        self._stream = stream
        self._region = region
        self._endpoint_url = endpoint_url
        self._key_field = key_field
        self._written = Metrics.counter(NAMESPACE, "records_written")

    def setup(self) -> None:
        self._client = make_client(self._region, self._endpoint_url, sdk_retries=3)

    def start_bundle(self) -> None:
        self._putter = KinesisPutter(self._client, self._stream)
        self._count = 0

    def process(self, record: Any) -> None:
        data = _as_bytes(record)
        self._count += 1
        fallback = uuid.uuid4().hex  # spread records without a key evenly over shards
        self._putter.add(data, partition_key_of(record, self._key_field, fallback))

    def finish_bundle(self) -> None:
        self._putter.flush()
        self._written.inc(self._putter.sent)


class WriteToKinesis(beam.PTransform):
    """Writes dicts (as JSON), bytes or str to a stream; partition key from `partition_key_field`."""

    def __init__(
        self,
        stream: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        partition_key_field: str | None = "key",
    ) -> None:
        super().__init__()
        self._args = (stream, region, endpoint_url, partition_key_field)

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return records | "PutRecords" >> beam.ParDo(_WriteBatches(*self._args))


# --------------------------------------------------------------------------- producer CLI


def _produce_records(args: argparse.Namespace) -> Iterator[bytes]:
    if args.from_file:
        with open(args.from_file, "rb") as handle:
            for line in handle:
                line = line.rstrip(b"\r\n")
                if line:
                    yield line
        return
    from io_connectors.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(events=args.synthetic, keys=args.keys, seed=args.seed, malformed=args.malformed)
    yield from generate(config, 0, args.synthetic)


def _produce(args: argparse.Namespace) -> int:
    client = make_client(args.region, args.endpoint_url, sdk_retries=5)
    if args.create:
        try:
            client.create_stream(StreamName=args.stream, ShardCount=args.shards)
        except Exception as err:  # noqa: BLE001 - botocore ClientError
            if _error_code(err) != "ResourceInUseException":
                raise
        client.get_waiter("stream_exists").wait(StreamName=args.stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    putter = KinesisPutter(client, args.stream)
    started = time.monotonic()
    count = 0
    for index, data in enumerate(_produce_records(args)):
        putter.add(data, partition_key_of(data, args.partition_key_field, str(index)))
        count += 1
    putter.flush()
    seconds = time.monotonic() - started
    summary = {
        "stream": args.stream,
        "records": count,
        "sent": putter.sent,
        "retried": putter.retried,
        "put_calls": putter.calls,
        "seconds": round(seconds, 3),
        "records_per_s": round(count / seconds) if seconds > 0 else None,
    }
    print(orjson.dumps(summary).decode())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m io_connectors.kinesis", description="Kinesis tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    produce = commands.add_parser(
        "produce",
        help="put records into a stream",
        description="Put NDJSON lines from a file, or seeded synthetic events, into a Kinesis stream "
        "(PutRecords batches of <= 500 records / 5 MiB; failed entries are retried).",
    )
    produce.add_argument("--stream", required=True, help="stream name")
    produce.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                         or "us-east-1", help="AWS region (default: $AWS_REGION or us-east-1)")
    produce.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL_KINESIS") or os.environ.get("AWS_ENDPOINT_URL"),
        help="endpoint override, e.g. http://127.0.0.1:4567 (default: $AWS_ENDPOINT_URL)",
    )
    source = produce.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-file", help="NDJSON file: one record per non-empty line")
    source.add_argument("--synthetic", type=int, metavar="N", help="N seeded synthetic events")
    produce.add_argument("--keys", type=int, default=50, help="synthetic: distinct keys (default 50)")
    produce.add_argument("--seed", type=int, default=42, help="synthetic: seed (default 42)")
    produce.add_argument("--malformed", type=float, default=0.01, help="synthetic: malformed fraction (default 0.01)")
    produce.add_argument("--partition-key-field", default="key",
                         help="JSON field used as partition key; records without it use their index (default: key)")
    produce.add_argument("--create", action="store_true", help="create the stream first if it does not exist")
    produce.add_argument("--shards", type=int, default=1, help="shard count for --create (default 1)")
    args = parser.parse_args(argv)
    if args.synthetic is not None and args.synthetic < 0:
        parser.error("--synthetic must be >= 0")
    try:
        return _produce(args)
    except KinesisError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
