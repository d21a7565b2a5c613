"""The parts of the Kinesis reader that need no AWS SDK: restriction, tracker, watermark
estimator, backoff and the batch type. Unit-tested without a pipeline or a server.

Positions are Kinesis sequence numbers: decimal strings of up to 128-bit integers, compared as
ints. A shard's restriction says where its iterator opens (`start`) and, once a checkpoint has
cut it, the last sequence number it may still claim (`stop_after`). A checkpoint after the
record with sequence number S leaves a residual that opens `AFTER_SEQUENCE_NUMBER S`, so a
resumed read never re-reads S and never skips the record after it.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker, WatermarkEstimator
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from io_connectors.records import RawBatch

# Claims that end a restriction instead of naming a record.
ADOPT = "ADOPT"  # ("ADOPT", shard_id, parents): a spare reader takes a newly created shard
SHARD_END = "SHARD_END"  # the shard is closed and every record in it has been claimed
STOP = "STOP"  # a bounded read (--max_records, --max_read_time, read-to-latest) ends here
EMPTY = -1  # stop_after of a restriction that may claim nothing (a checkpoint before any claim)

ITERATOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")
MIN_WATERMARK_MS = MIN_TIMESTAMP.micros // 1000 + 1


class StartPosition(NamedTuple):
    """Where a shard iterator opens: GetShardIterator's type plus its sequence number or time."""

    kind: str
    sequence: str | None = None
    timestamp_ms: int | None = None

    @classmethod
    def after(cls, sequence: int | str) -> StartPosition:
        return cls("AFTER_SEQUENCE_NUMBER", str(sequence))

    def iterator_args(self) -> dict[str, Any]:
        """Keyword arguments of GetShardIterator for this position."""
        if self.kind not in ITERATOR_TYPES:
            raise ValueError(f"unknown shard iterator type {self.kind!r}; use one of {', '.join(ITERATOR_TYPES)}")
        args: dict[str, Any] = {"ShardIteratorType": self.kind}
        if self.kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            args["StartingSequenceNumber"] = self.sequence
        elif self.kind == "AT_TIMESTAMP":
            args["Timestamp"] = datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
        return args

    def floor(self) -> int | None:
        """Sequence numbers at or below this are already read (AFTER_SEQUENCE_NUMBER only)."""
        if self.kind == "AFTER_SEQUENCE_NUMBER":
            return int(self.sequence)
        if self.kind == "AT_SEQUENCE_NUMBER":
            return int(self.sequence) - 1
        return None


class ShardRestriction(NamedTuple):
    """The part of one shard an SDF element reads.

    `stop_after` is None for "to the shard's end" (or until a bounded read stops), EMPTY for
    nothing, or the last sequence number this restriction may claim (set by a checkpoint).
    `backlog_ms` is MillisBehindLatest when the restriction was cut: the size runners see.
    """

    start: StartPosition
    stop_after: int | None = None
    backlog_ms: int | None = None
    shard_id: str | None = None  # None: a spare reader that has not adopted a shard yet
    parents: tuple[str, ...] = ()  # shards that must be finished before this one is read


class ShardTracker(RestrictionTracker):
    """Claims records of one shard in sequence-number order; splits only at a checkpoint.

    Positions: `(sequence_number, millis_behind_latest)` tuples (or bare sequence numbers) for
    records, SHARD_END when a closed shard is exhausted, STOP when a bounded read ends early.
    """

    def __init__(self, restriction: ShardRestriction) -> None:
        self._restriction = restriction
        self._floor = restriction.start.floor()
        self._last: int | None = None
        self._claimed = 0
        self._backlog_ms = restriction.backlog_ms
        self._ended: str | None = SHARD_END if restriction.stop_after == EMPTY else None

    def current_restriction(self) -> ShardRestriction:
        return self._restriction

    @property
    def last_claimed(self) -> int | None:
        return self._last

    def try_claim(self, position: Any) -> bool:
        if isinstance(position, tuple) and position[0] == ADOPT:
            if self._restriction.shard_id is not None or self._last is not None:
                raise ValueError(f"Only a spare reader can adopt a shard; {self._restriction} already reads one.")
            if self._ended is not None or self._restriction.stop_after is not None:
                return False
            _, shard_id, parents = position
            self._restriction = self._restriction._replace(shard_id=shard_id, parents=tuple(parents))
            return True
        if position in (SHARD_END, STOP):
            if self._ended is not None or self._restriction.stop_after is not None:
                # Already over, or a checkpoint cut this restriction: the residual owns the rest.
                return False
            self._ended = position
            return True
        if isinstance(position, tuple):
            sequence, behind = int(position[0]), position[1]
        else:
            sequence, behind = int(position), None
        lower = self._last if self._last is not None else self._floor
        if lower is not None and sequence <= lower:
            raise ValueError(
                f"Positions claimed should strictly increase, but sequence number {sequence} follows "
                f"{lower} in {self._restriction}; a resumed read must open AFTER_SEQUENCE_NUMBER {lower}."
            )
        if self._ended is not None:
            return False
        stop_after = self._restriction.stop_after
        if stop_after is not None and sequence > stop_after:
            return False
        self._last = sequence
        self._claimed += 1
        if behind is not None:
            self._backlog_ms = int(behind)
        return True

    def try_split(self, fraction_of_remainder: float) -> tuple[ShardRestriction, ShardRestriction] | None:
        # A shard is a sequence whose end nobody knows: only checkpoints (fraction 0) make sense.
        if fraction_of_remainder != 0 or self._ended is not None or self._restriction.stop_after is not None:
            return None
        current = self._restriction._replace(backlog_ms=self._backlog_ms)
        if self._last is None:
            primary = current._replace(stop_after=EMPTY)
            residual = current
        else:
            primary = current._replace(stop_after=self._last)
            residual = current._replace(start=StartPosition.after(self._last))
        self._restriction = primary
        return primary, residual

    def check_done(self) -> None:
        if self._ended is not None:
            return
        stop_after = self._restriction.stop_after
        if stop_after == EMPTY or (stop_after is not None and self._last == stop_after):
            return
        raise ValueError(
            f"Shard restriction {self._restriction} is not done: last claimed {self._last}; the reader "
            "must claim SHARD_END or STOP, or checkpoint (defer_remainder) before returning."
        )

    def current_progress(self) -> RestrictionProgress:
        remaining = 0.0 if self.is_done() else backlog_size(self._backlog_ms)
        return RestrictionProgress(completed=float(self._claimed), remaining=remaining)

    def is_done(self) -> bool:
        stop_after = self._restriction.stop_after
        return (
            self._ended is not None
            or stop_after == EMPTY
            or (stop_after is not None and self._last == stop_after)
        )

    def is_bounded(self) -> bool:
        return self._restriction.stop_after is not None or self._ended is not None


def backlog_size(backlog_ms: int | None) -> float:
    """Restriction size from MillisBehindLatest: seconds of backlog plus one for the shard
    itself (an unread shard of unknown backlog still counts as work)."""
    return 1.0 + max(backlog_ms or 0, 0) / 1000.0


class WatermarkState(NamedTuple):
    watermark_ms: int = MIN_WATERMARK_MS
    last_activity_ms: int = 0  # when records last arrived (clock ms); 0: never


class ShardWatermarkEstimator(WatermarkEstimator):
    """Watermark of one shard from its records' times (arrival or event time), never moving back.

    A caught-up shard with no new records for `idle_after_ms` advances to `now - idle_lag_ms`:
    records that arrive later carry arrival times near `now`, and the lag absorbs clock skew.
    The clock is injected so tests can drive idleness without waiting.
    """

    def __init__(
        self,
        state: WatermarkState | None = None,
        clock_ms: Callable[[], int] | None = None,
        idle_after_ms: int = 2_000,
        idle_lag_ms: int = 2_000,
    ) -> None:
        state = WatermarkState(*state) if state is not None else WatermarkState()
        self._watermark_ms = state.watermark_ms
        self._last_activity_ms = state.last_activity_ms
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._idle_after_ms = idle_after_ms
        self._idle_lag_ms = idle_lag_ms

    def observe_timestamp(self, timestamp: Timestamp) -> None:
        # Output timestamps are derived from the watermark itself; the records drive it.
        pass

    def current_watermark(self) -> Timestamp:
        if self._watermark_ms <= MIN_WATERMARK_MS:
            return MIN_TIMESTAMP
        return Timestamp(micros=self._watermark_ms * 1000)

    def watermark_ms(self) -> int:
        return self._watermark_ms

    def get_estimator_state(self) -> WatermarkState:
        return WatermarkState(self._watermark_ms, self._last_activity_ms)

    def observe_records(self, times_ms: Sequence[int]) -> None:
        """Records were read: the watermark may rise to their earliest time (never falls)."""
        self._last_activity_ms = self._clock_ms()
        if times_ms:
            self._watermark_ms = max(self._watermark_ms, min(times_ms))

    def observe_idle(self, now_ms: int | None = None) -> bool:
        """A caught-up poll found nothing; returns True when the watermark advanced."""
        now = self._clock_ms() if now_ms is None else now_ms
        if self._last_activity_ms == 0:
            self._last_activity_ms = now  # idleness is measured from the first idle poll
            return False
        if now - self._last_activity_ms < self._idle_after_ms:
            return False
        target = now - self._idle_lag_ms
        if target <= self._watermark_ms:
            return False
        self._watermark_ms = target
        return True


class Backoff:
    """Exponential backoff with jitter, counted per key (a shard), reset by a success."""

    def __init__(self, base_s: float = 0.2, cap_s: float = 10.0, rng: Callable[[], float] = random.random) -> None:
        self._base = base_s
        self._cap = cap_s
        self._rng = rng
        self._attempts: dict[str, int] = {}

    def failure(self, key: str) -> float:
        """Seconds to wait after one more failure for `key`: half fixed, half random."""
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        ceiling = min(self._cap, self._base * 2 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._rng())

    def success(self, key: str) -> None:
        self._attempts.pop(key, None)

    def attempts(self, key: str) -> int:
        return self._attempts.get(key, 0)


class KinesisBatch(RawBatch):
    """A RawBatch (one GetRecords page of one shard) that also carries each record's partition key.

    `positions` are sequence numbers, `arrival_ms` approximate arrival times, `source`
    is kinesis://STREAM/SHARD_ID.
    """

    def __new__(
        cls,
        source: str,
        records: Sequence[Any],
        positions: Sequence[str] | None = None,
        first_offset: int = 0,
        arrival_ms: Sequence[int] | None = None,
        partition_keys: Sequence[str] | None = None,
        shard_id: str | None = None,
    ) -> KinesisBatch:
        batch = super().__new__(cls, source, records, positions, first_offset, arrival_ms)
        batch.partition_keys = partition_keys
        batch.shard_id = shard_id
        return batch

    def __reduce__(self) -> tuple:
        # Coders pickle subclasses of NamedTuples: keep the extra fields.
        return (KinesisBatch, (*tuple(self), self.partition_keys, self.shard_id))

    def __getnewargs__(self) -> tuple:
        return (*tuple(self), self.partition_keys, self.shard_id)


class ReadRegistry:
    """Process-local coordination of one read (keyed by its read id): the --max_records budget,
    the --max_read_time deadline and which shards are finished (so children wait for parents).

    Exact on the DirectRunner, where every bundle runs in this process. On a distributed runner
    each worker process keeps its own (see docs/kinesis.md).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._finished: dict[str, set[str]] = {}
        self._known: dict[str, set[str]] = {}

    def take(self, read_id: str, limit: int | None, wanted: int) -> int:
        if limit is None:
            return wanted
        with self._lock:
            remaining = self._budgets.setdefault(read_id, limit)
            granted = min(remaining, wanted)
            self._budgets[read_id] = remaining - granted
            return granted

    def give_back(self, read_id: str, count: int) -> None:
        if count > 0:
            with self._lock:
                self._budgets[read_id] = self._budgets.get(read_id, 0) + count

    def exhausted(self, read_id: str, limit: int | None) -> bool:
        if limit is None:
            return False
        with self._lock:
            return self._budgets.setdefault(read_id, limit) <= 0

    def past_deadline(self, read_id: str, seconds: float | None, now: float | None = None) -> bool:
        if seconds is None:
            return False
        now = time.monotonic() if now is None else now
        with self._lock:
            started = self._started.setdefault(read_id, now)
        return now - started >= seconds

    def add_known(self, read_id: str, shard_ids: Iterable[str]) -> None:
        with self._lock:
            self._known.setdefault(read_id, set()).update(shard_ids)

    def known(self, read_id: str) -> set[str]:
        with self._lock:
            return set(self._known.get(read_id, ()))

    def claim_shard(self, read_id: str, shard_id: str) -> bool:
        """A spare reader takes `shard_id`; False when the read already has it."""
        with self._lock:
            known = self._known.setdefault(read_id, set())
            if shard_id in known:
                return False
            known.add(shard_id)
            return True

    def mark_finished(self, read_id: str, shard_id: str) -> None:
        with self._lock:
            self._finished.setdefault(read_id, set()).add(shard_id)

    def is_finished(self, read_id: str, shard_id: str) -> bool:
        with self._lock:
            return shard_id in self._finished.get(read_id, ())


REGISTRY = ReadRegistry()
