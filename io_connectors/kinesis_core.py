"""The parts of the Kinesis reader that need no AWS SDK: its settings, the shard element, the
restriction and tracker, backoff, the batch type and which shards a read knows and has finished.
Unit-tested without a pipeline or a server.

Positions are Kinesis sequence numbers: decimal strings of up to 128-bit integers, compared as
ints. A shard's restriction says where its iterator opens (`start`) and, once a checkpoint has
cut it, the last sequence number it may still claim (`stop_after`). A checkpoint after the
record with sequence number S leaves a residual that opens `AFTER_SEQUENCE_NUMBER S`, so a
resumed read never re-reads S and never skips the record after it.

A KPL aggregate holds many user records under one sequence number; the user record at index k
is at (S, k) (its sub-sequence number). A checkpoint after (S, k) that is not the aggregate's
last user record cuts the restriction at `stop_after = (S, k)` and leaves a residual that opens
`AT_SEQUENCE_NUMBER S` (GetShardIterator opens at or after a sequence number, never inside a
record) with `sub_through = k`: it reads the aggregate again and skips user records 0..k.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker

from io_connectors.kinesis_client import GET_RECORDS_LIMIT
from io_connectors.read_core import StreamReadSettings
from io_connectors.records import RawBatch

# Claims that end a restriction instead of naming a record.
ADOPT = "ADOPT"  # ("ADOPT", shard_id, parents): a spare reader takes a newly created shard
SHARD_END = "SHARD_END"  # the shard is closed and every record in it has been claimed
STOP = "STOP"  # a bounded read (--max_records, --max_read_time, read-to-latest) ends here
# ("BEHIND", millis_behind_latest): a page without records reports how far the shard's tip is;
# it claims nothing, so the backlog the runner sees falls to zero on a caught-up shard.
BEHIND = "BEHIND"
EMPTY = -1  # stop_after of a restriction that may claim nothing (a checkpoint before any claim)

ITERATOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")


class StartPosition(NamedTuple):
    """Where a shard iterator opens: GetShardIterator's type plus its sequence number or time.

    `sub_through` (with AT_SEQUENCE_NUMBER): user records 0..sub_through of the aggregate at
    `sequence` are already read."""

    kind: str
    sequence: str | None = None
    timestamp_ms: int | None = None
    sub_through: int | None = None

    @classmethod
    def after(cls, sequence: int | str) -> StartPosition:
        return cls("AFTER_SEQUENCE_NUMBER", str(sequence))

    @classmethod
    def resume(cls, stored: str) -> StartPosition:
        """Where to continue after a stored position (`resume_text`): "S" after record S, "S:k"
        inside the aggregate S, after its user record k."""
        sequence, _, sub = stored.partition(":")
        if not sub:
            return cls.after(sequence)
        return cls("AT_SEQUENCE_NUMBER", sequence, sub_through=int(sub))

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

    def floor_key(self) -> tuple[int, float] | None:
        """(sequence, sub-sequence) at or below which user records are already read."""
        if self.kind == "AT_SEQUENCE_NUMBER" and self.sub_through is not None:
            return int(self.sequence), self.sub_through
        floor = self.floor()
        return None if floor is None else (floor, WHOLE)


WHOLE = math.inf  # the sub-sequence key of a whole record (plain, or an aggregate's last user record)


class UserRecordPosition(NamedTuple):
    """The claim position of one user record of a KPL aggregate (a plain record claims its bare
    sequence number, or (sequence, millis_behind_latest))."""

    sequence: int
    sub: int
    last: bool  # the aggregate's last user record: claiming it completes the Kinesis record
    behind: int | None = None

    def key(self) -> tuple[int, float]:
        return (self.sequence, WHOLE if self.last else self.sub)


def resume_text(sequence: int | str, sub: int | None = None, last: bool = True) -> str:
    """The stored position after a claim: "S" once record S is complete, "S:k" inside an aggregate."""
    return str(sequence) if last or sub is None else f"{sequence}:{sub}"


class ShardRestriction(NamedTuple):
    """The part of one shard an SDF element reads.

    `stop_after` is None for "to the shard's end" (or until a bounded read stops), EMPTY for
    nothing, the last sequence number this restriction may claim (set by a checkpoint), or
    (sequence, sub) when a checkpoint fell inside an aggregate.
    `backlog_ms` is MillisBehindLatest when the restriction was cut: the size runners see.
    """

    start: StartPosition
    stop_after: int | tuple[int, int] | None = None
    backlog_ms: int | None = None
    shard_id: str | None = None  # None: a spare reader that has not adopted a shard yet
    parents: tuple[str, ...] = ()  # shards that must be finished before this one is read


class ShardTracker(RestrictionTracker):
    """Claims records of one shard in sequence-number order; splits only at a checkpoint.

    Positions: `(sequence_number, millis_behind_latest)` tuples (or bare sequence numbers) for
    records, UserRecordPositions for user records of KPL aggregates, SHARD_END when a closed
    shard is exhausted, STOP when a bounded read ends early;
    `(BEHIND, millis_behind_latest)` only updates the backlog that `current_progress` reports.
    """

    def __init__(self, restriction: ShardRestriction) -> None:
        self._restriction = restriction
        # Claims are keyed (sequence, sub); a whole record's sub is WHOLE.
        self._floor = restriction.start.floor_key()
        self._last: tuple[int, float] | None = None
        self._claimed = 0
        self._backlog_ms = restriction.backlog_ms
        self._ended: str | None = SHARD_END if restriction.stop_after == EMPTY else None

    def current_restriction(self) -> ShardRestriction:
        return self._restriction

    def try_claim(self, position: Any) -> bool:
        if isinstance(position, tuple) and position[0] == ADOPT:
            if self._restriction.shard_id is not None or self._last is not None:
                raise ValueError(f"Only a spare reader can adopt a shard; {self._restriction} already reads one.")
            if self._ended is not None or self._restriction.stop_after is not None:
                return False
            _, shard_id, parents = position
            self._restriction = self._restriction._replace(shard_id=shard_id, parents=tuple(parents))
            return True
        if isinstance(position, tuple) and position[0] == BEHIND:
            if self.is_done():
                return False
            self._backlog_ms = int(position[1])
            return True
        if position in (SHARD_END, STOP):
            if self._ended is not None or self._restriction.stop_after is not None:
                # Already over, or a checkpoint cut this restriction: the residual owns the rest.
                return False
            self._ended = position
            return True
        if isinstance(position, UserRecordPosition):
            key, behind = position.key(), position.behind
        elif isinstance(position, tuple):
            key, behind = (int(position[0]), WHOLE), position[1]
        else:
            key, behind = (int(position), WHOLE), None
        lower = self._last if self._last is not None else self._floor
        if lower is not None and key <= lower:
            raise ValueError(
                f"Positions claimed should strictly increase, but {_shown(key)} follows {_shown(lower)} in "
                f"{self._restriction}; a resumed read must open after {_shown(lower)}."
            )
        if self._ended is not None:
            return False
        stop = _stop_key(self._restriction.stop_after)
        if stop is not None and key > stop:
            return False
        self._last = key
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
        elif self._last[1] == WHOLE:
            primary = current._replace(stop_after=self._last[0])
            residual = current._replace(start=StartPosition.after(self._last[0]))
        else:
            # Inside an aggregate: the residual reads it again and skips what this one claimed.
            sequence, sub = self._last[0], int(self._last[1])
            primary = current._replace(stop_after=(sequence, sub))
            residual = current._replace(start=StartPosition("AT_SEQUENCE_NUMBER", str(sequence), sub_through=sub))
        self._restriction = primary
        return primary, residual

    def check_done(self) -> None:
        if self._ended is not None:
            return
        stop_after = self._restriction.stop_after
        if stop_after == EMPTY or (stop_after is not None and self._last == _stop_key(stop_after)):
            return
        raise ValueError(
            f"Shard restriction {self._restriction} is not done: last claimed {_shown(self._last)}; the reader "
            "must claim SHARD_END or STOP, or checkpoint (defer_remainder) before returning."
        )

    def current_progress(self) -> RestrictionProgress:
        # Remaining work in the unit of restriction_size: seconds behind the shard's tip (the last
        # MillisBehindLatest) plus one for the open shard; runners compare the two.
        remaining = 0.0 if self.is_done() else backlog_size(self._backlog_ms)
        return RestrictionProgress(completed=float(self._claimed), remaining=remaining)

    def is_done(self) -> bool:
        stop_after = self._restriction.stop_after
        return (
            self._ended is not None
            or stop_after == EMPTY
            or (stop_after is not None and self._last == _stop_key(stop_after))
        )

    def is_bounded(self) -> bool:
        return self._restriction.stop_after is not None or self._ended is not None


def _stop_key(stop_after: int | tuple[int, int] | None) -> tuple[int, float] | None:
    """The last claimable (sequence, sub) of a restriction's stop_after."""
    if stop_after is None or isinstance(stop_after, tuple):
        return stop_after
    return (stop_after, WHOLE)


def _shown(key: tuple[int, float] | None) -> str:
    if key is None:
        return "nothing"
    sequence, sub = key
    return f"sequence number {sequence}" if sub == WHOLE else f"sequence number {sequence} sub-sequence {int(sub)}"


def backlog_size(backlog_ms: int | None) -> float:
    """Restriction size from MillisBehindLatest: seconds of backlog plus one for the shard
    itself (an unread shard of unknown backlog still counts as work)."""
    return 1.0 + max(backlog_ms or 0, 0) / 1000.0


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




@dataclass(frozen=True, kw_only=True)
class KinesisReadConfig(StreamReadSettings):
    """Everything a Kinesis read needs besides the shared bounds, fixed at construction
    (picklable: it travels to the workers)."""

    stream: str
    region: str | None = None
    endpoint_url: str | None = None
    start_position: str = "LATEST"  # of the shards listed first; later shards read from their start
    start_timestamp_ms: int | None = None  # AT_TIMESTAMP
    watermark: str = "arrival"  # or "event_time": from `event_time_field` in `event_time_unit`
    event_time_field: str = "event_time"
    event_time_unit: str = "ms"
    poll_interval_s: float = 1.0  # wait after an empty GetRecords
    discovery_interval_s: float = 10.0  # between shard listings of an unbounded read
    follow_resharding: bool = True  # False: an unbounded read lists the shards once, at its start
    parent_wait_s: float = 120.0  # longest wait for parents another worker process reads
    records_per_call: int = GET_RECORDS_LIMIT
    spare_readers: int = 4  # a bounded read's readers for shards created after its one listing
    idle_after_s: float = 2.0
    deaggregate: bool = True  # split KPL aggregates into their user records (io_connectors.kinesis_kpl)
    # A runner commits (and passes downstream) what a call emitted only when the call returns:
    # one second keeps streaming output fresh (Prism) at the cost of a checkpoint per second.
    max_call_s: float = 1.0

    def problems(self) -> list[str]:
        """Readable problems with the settings (empty when all is well)."""
        problems = self.bound_problems()
        if not self.stream:
            problems.append("the stream name is empty")
        if self.start_position not in ("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"):
            problems.append(f"start position {self.start_position!r} must be LATEST, TRIM_HORIZON or AT_TIMESTAMP")
        if self.start_position == "AT_TIMESTAMP" and self.start_timestamp_ms is None:
            problems.append("AT_TIMESTAMP needs a start timestamp")
        if self.watermark not in ("arrival", "event_time"):
            problems.append(f"watermark {self.watermark!r} must be arrival or event_time")
        if not 1 <= self.records_per_call <= GET_RECORDS_LIMIT:
            problems.append(f"records_per_call must be within 1..{GET_RECORDS_LIMIT}")
        return problems


class KinesisShard(NamedTuple):
    """One shard to read: the element of the per-shard reader."""

    stream: str
    shard_id: str  # "" for a spare reader, which adopts a shard created after the listing
    parents: tuple[str, ...] = ()  # parent shards this read must finish first
    start: StartPosition = StartPosition("TRIM_HORIZON")


class ShardRegistry:
    """Which shards a read (keyed by its read id) knows and has finished, so that children wait
    for their parents and spare readers adopt only shards nobody reads.

    Exact on the DirectRunner, where every bundle runs in this process. On a distributed runner
    each worker process keeps its own (see docs/kinesis.md).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, set[str]] = {}
        self._finished: dict[str, set[str]] = {}

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
            taken = shard_id in known
            known.add(shard_id)
            return not taken

    def mark_finished(self, read_id: str, shard_id: str) -> None:
        with self._lock:
            self._finished.setdefault(read_id, set()).add(shard_id)

    def is_finished(self, read_id: str, shard_id: str) -> bool:
        with self._lock:
            return shard_id in self._finished.get(read_id, ())

    def all_finished(self, read_id: str) -> bool:
        with self._lock:
            return self._known.get(read_id, set()) <= self._finished.get(read_id, set())


SHARDS = ShardRegistry()
