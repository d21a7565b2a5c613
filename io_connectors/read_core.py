"""What the three stream readers (Kinesis, Event Hubs, Pub/Sub) share: bounds, a record budget,
an idle-aware watermark, the claim loop, the metrics they report, and one way to declare a read
unbounded.

Each connector keeps only what is its own: how it fetches, what a position is, what a batch
holds. Pure logic with injectable clocks: unit-tested without a runner or a server.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple, Sequence, TypeVar

import apache_beam as beam
from apache_beam.io.iobase import WatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from io_connectors.metrics import (
    BYTES_READ,
    SOURCE_BACKLOG_RECORDS,
    SOURCE_LAG_MS,
    SOURCE_RECORDS_READ,
    WATERMARK_LAG_MS,
    Counter,
    Gauge,
)

Clock = Callable[[], float]  # epoch seconds, like time.time


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, kw_only=True)
class StreamReadSettings:
    """What every stream read is told besides where to read: its bounds, its position store and
    its idle watermark. Frozen and picklable: it travels to the workers with the reader.

    A read is bounded by `max_records` (across all shards/partitions), `max_read_time_s` (from
    the read's start), or `read_to_latest` (stop each shard or partition once caught up).
    """

    max_records: int | None = None
    max_read_time_s: float | None = None
    read_to_latest: bool = False
    position_store: str | None = None  # --resume: the io_connectors.positions store of this read
    idle_after_s: float = 5.0  # quiet time after which a caught-up reader advances its watermark
    max_call_s: float = 5.0  # longest process() call before a checkpoint: the runner commits (and
    # finalizes, acknowledging) at least this often
    read_id: str = ""  # keys the process-wide record budget and deadline of this read

    @property
    def bounded(self) -> bool:
        return self.read_to_latest or self.max_records is not None or self.max_read_time_s is not None

    def bound_problems(self) -> list[str]:
        """Readable problems with the bounds (empty when all is well)."""
        problems = []
        if self.max_records is not None and self.max_records < 1:
            problems.append(f"max_records {self.max_records} must be positive")
        if self.max_read_time_s is not None and not self.max_read_time_s > 0:
            problems.append(f"max_read_time {self.max_read_time_s} must be a positive number of seconds")
        if not self.max_call_s > 0:
            problems.append(f"the checkpoint interval {self.max_call_s} must be a positive number of seconds")
        if not self.idle_after_s >= 0:
            problems.append(f"the idle watermark delay {self.idle_after_s} must be 0 or more seconds")
        return problems


# --------------------------------------------------------------------------- stop


# Set by whoever runs the job (pipelines/run.py on Ctrl-C): every reader in this process ends its
# restriction at its next look, as a bounded read does when its budget is spent, so the runner
# closes and writes every open window and the run finishes cleanly. Readers in this process only:
# the local runners (DirectRunner, Prism's LOOPBACK workers) run them in the launching process.
_STOP = threading.Event()


def stop_reading() -> None:
    """Asks every stream reader in this process to finish its read (a drain, not a kill)."""
    _STOP.set()


def resume_reading() -> None:
    """Clears a stop request (for a later run in the same process)."""
    _STOP.clear()


def stop_requested() -> bool:
    return _STOP.is_set()


# --------------------------------------------------------------------------- record budget


class RecordBudget:
    """--max_records and --max_read_time of one read, shared by every reader in this process.

    Records are taken from the budget before they are claimed, so a reader never claims (and
    so never acknowledges or commits) a record it will not emit. Keyed by the read's id:
    exact on the DirectRunner; on a multi-worker runner each worker process keeps its own.
    """

    _lock = threading.Lock()
    _remaining: dict[str, int] = {}
    _started: dict[str, float] = {}

    def __init__(self, read_id: str, limit: int | None, seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read_id = read_id
        self.limit = limit
        self.seconds = seconds
        self._clock = clock

    def take(self, wanted: int) -> int:
        """Up to `wanted` records granted now (all of them when there is no limit)."""
        if self.limit is None:
            return wanted
        with self._lock:
            left = self._remaining.setdefault(self.read_id, self.limit)
            granted = min(left, wanted)
            self._remaining[self.read_id] = left - granted
            return granted

    def give_back(self, count: int) -> None:
        if self.limit is None or count <= 0:
            return
        with self._lock:
            self._remaining[self.read_id] = self._remaining.get(self.read_id, 0) + count

    @property
    def spent(self) -> bool:
        if self.limit is None:
            return False
        with self._lock:
            return self._remaining.setdefault(self.read_id, self.limit) <= 0

    def past_deadline(self) -> bool:
        """--max_read_time has passed, counted from the first time any reader asked."""
        if self.seconds is None:
            return False
        now = self._clock()
        with self._lock:
            started = self._started.setdefault(self.read_id, now)
        return now - started >= self.seconds

    @property
    def over(self) -> bool:
        """The read is over: budget spent, deadline passed, or a stop requested (stop_reading)."""
        return self.spent or self.past_deadline() or stop_requested()


# Called with the number of records each claim_within_budget call claimed, in the reader's process:
# an explicit hook for progress reporting and for tests that stop a run mid-read.
_CLAIM_LISTENERS: list[Callable[[int], None]] = []


def listen_to_claims(listener: Callable[[int], None]) -> Callable[[], None]:
    """Calls `listener(count)` after every claim of `count` records in this process; returns the
    function that removes it."""
    _CLAIM_LISTENERS.append(listener)
    return lambda: _CLAIM_LISTENERS.remove(listener)


class Claimed(NamedTuple):
    records: list[Any]  # claimed, in order: emit exactly these
    budget_spent: bool  # the budget granted fewer than were fetched: the read is over


def claim_within_budget(records: Sequence[Any], budget: RecordBudget, claim: Callable[[Any], bool]) -> Claimed:
    """Claims fetched records in order, as many as the budget grants, stopping at the first
    refusal (a checkpoint cut the restriction: its residual reads the rest). Ungranted and
    unclaimed records go back to the budget."""
    granted = budget.take(len(records))
    claimed = []
    for record in records[:granted]:
        if not claim(record):
            break
        claimed.append(record)
    budget.give_back(granted - len(claimed))
    if claimed:
        for listener in _CLAIM_LISTENERS:
            listener(len(claimed))
    return Claimed(claimed, len(claimed) == granted < len(records))


# --------------------------------------------------------------------------- watermark


class WatermarkState(NamedTuple):
    """All a checkpoint carries of a reader's watermark."""

    watermark_ms: int | None = None
    quiet_since_s: float | None = None  # when the reader was first seen caught up and quiet


class IdleWatermarkEstimator(WatermarkEstimator):
    """A watermark that never moves back, and advances on a quiet reader.

    The reader reports what it read (`observe`, with the time its records bound) and when it
    found nothing new (`idle`). A reader quiet for `idle_after_s` advances its watermark to
    `now - idle_lag_s`: records that arrive later carry times near now, and the lag absorbs
    clock skew between the service and the worker.
    """

    def __init__(self, state: WatermarkState | tuple | None, idle_after_s: float, idle_lag_s: float,
                 clock: Clock = time.time) -> None:
        state = WatermarkState(*state) if state else WatermarkState()
        self._watermark_ms = state.watermark_ms
        self._quiet_since = state.quiet_since_s
        self._idle_after_s = idle_after_s
        self._idle_lag_s = idle_lag_s
        self._clock = clock

    def observe_timestamp(self, timestamp: Timestamp) -> None:
        # Output timestamps derive from the watermark; the readers report record times instead.
        pass

    def observe(self, bound_ms: int | None) -> None:
        """Records were read; nothing still to come is older than `bound_ms` (None: unknown)."""
        self._quiet_since = None
        self._advance(bound_ms)

    def idle(self) -> bool:
        """The reader is caught up and found nothing; True when the watermark advanced."""
        now = self._clock()
        if self._quiet_since is None:
            self._quiet_since = now
        if now - self._quiet_since < self._idle_after_s:
            return False
        return self._advance(int((now - self._idle_lag_s) * 1000))

    def quiet_seconds(self) -> float:
        """How long the reader has been caught up with nothing new (0 while records flow)."""
        return 0.0 if self._quiet_since is None else max(0.0, self._clock() - self._quiet_since)

    def watermark_ms(self) -> int | None:
        return self._watermark_ms

    def _advance(self, candidate_ms: int | None) -> bool:
        if candidate_ms is None or (self._watermark_ms is not None and candidate_ms <= self._watermark_ms):
            return False
        self._watermark_ms = candidate_ms
        return True

    def current_watermark(self) -> Timestamp:
        if self._watermark_ms is None:
            return MIN_TIMESTAMP
        return Timestamp(micros=self._watermark_ms * 1000)

    def get_estimator_state(self) -> WatermarkState:
        return WatermarkState(self._watermark_ms, self._quiet_since)


# --------------------------------------------------------------------------- metrics


class SourceMetrics:
    """The lag vocabulary (io_connectors.metrics) as one stream reader reports it, per split (a
    shard, partition or subscription). Readers call it once per fetched page or poll, never per
    record, and make it in setup(): the gauges are this worker's."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._records = Counter(SOURCE_RECORDS_READ)
        self._bytes = Counter(BYTES_READ)
        self._lag = Gauge(SOURCE_LAG_MS)
        self._backlog = Gauge(SOURCE_BACKLOG_RECORDS)
        self._watermark_lag = Gauge(WATERMARK_LAG_MS)

    def claimed(self, records: int, size: int) -> None:
        """`records` records of `size` payload bytes were claimed (and so will be emitted)."""
        self._records.inc(records)
        self._bytes.inc(size)

    def lag(self, split: str, lag_ms: float) -> None:
        """source_lag_ms: how far the reader of `split` is behind the head of the stream."""
        self._lag.set(split, max(lag_ms, 0))

    def backlog(self, split: str, records: int) -> None:
        """source_backlog_records: records of `split` not yet read (where the service tells)."""
        self._backlog.set(split, max(records, 0))

    def watermark(self, split: str, estimator: IdleWatermarkEstimator) -> None:
        """watermark_lag_ms: wall clock minus the reader's watermark (nothing before it has one)."""
        watermark_ms = estimator.watermark_ms()
        if watermark_ms is not None:
            self._watermark_lag.set(split, max(self._clock() * 1000 - watermark_ms, 0))


# --------------------------------------------------------------------------- the reader base


class StreamReadFn(beam.DoFn, RestrictionProvider, WatermarkEstimatorProvider):
    """Base of the three splittable stream readers; each is its own restriction and watermark
    estimator provider (as Beam's Watch is). Provider methods run on a separately deserialized
    copy before setup(), so they use only what __init__ fixed.

    Subclasses give `initial_restriction`, `create_tracker`, `restriction_size` and `process`,
    and may override `initial_watermark_ms`. One reader reads each element's restriction in
    order: splits are checkpoints only, and a drain stops reading (no truncated residual).
    """

    def __init__(self, settings: StreamReadSettings, clock: Clock = time.time,
                 idle_lag_s: float | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._idle_lag_s = settings.idle_after_s if idle_lag_s is None else idle_lag_s

    # ---- RestrictionProvider
    def split(self, element: Any, restriction: Any) -> Iterable[Any]:
        yield restriction

    def truncate(self, element: Any, restriction: Any) -> None:
        return None

    # ---- WatermarkEstimatorProvider
    def initial_watermark_ms(self, element: Any) -> int | None:
        return None

    def initial_estimator_state(self, element: Any, restriction: Any) -> WatermarkState:
        return WatermarkState(self.initial_watermark_ms(element))

    def create_watermark_estimator(self, state: WatermarkState) -> IdleWatermarkEstimator:
        return IdleWatermarkEstimator(state, self._settings.idle_after_s, self._idle_lag_s, self._clock)

    # ---- DoFn
    def setup(self) -> None:
        s = self._settings
        self._budget = RecordBudget(s.read_id, s.max_records, s.max_read_time_s, clock=self._clock)


Fn = TypeVar("Fn", bound=type)


def unbounded(reader: Fn) -> Fn:
    """The same reader, declared to do unbounded work per element, so its output is unbounded.

    Bounded reads keep the plain reader: their output stays a bounded PCollection, so batch
    aggregation in the global window stays possible downstream."""
    process = reader.process

    @functools.wraps(process)
    def unbounded_process(self: Any, *args: Any, **kwargs: Any) -> Any:
        return process(self, *args, **kwargs)

    unbounded_process.unbounded_per_element = True  # what beam.DoFn.unbounded_per_element() sets
    return type(f"Unbounded{reader.__name__.lstrip('_')}", (reader,), {
        "process": unbounded_process, "__module__": reader.__module__,
        "__doc__": f"{reader.__name__}, unbounded."})
