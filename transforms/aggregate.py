"""Mergeable per-window metrics: exact count/sum/min/max/mean, sketched quantiles and distincts.

A `Partial` starts exact (it keeps the values and ids it has seen) and turns into Apache
DataSketches sketches (KLL for quantiles, HLL for distinct ids) once it holds more than
EXACT_LIMIT items. Most window groups are small, so most never pay for a sketch, and the
results of a small group are exact; large groups get the sketches' stated error.
"""

from __future__ import annotations

import math
import zlib
from array import array
from fractions import Fraction
from typing import Any, Iterable, Sequence

import apache_beam as beam
import numpy as np
from datasketches import hll_sketch, hll_union, kll_doubles_sketch

from transforms.decode import EventColumns
from transforms.idhash import hash_list

EXACT_LIMIT = 256
KLL_K = 200  # normalized rank error about 1.3% (kll_doubles_sketch.normalized_rank_error)
HLL_LG_K = 12  # relative standard error about 1.6%
QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))

KLL_RANK_ERROR = kll_doubles_sketch(KLL_K).normalized_rank_error(False)
HLL_RELATIVE_ERROR = 1.04 / math.sqrt(1 << HLL_LG_K)


def exact_sum(values: Sequence[float]) -> float:
    """The correctly rounded sum of finite values; +-inf when the sum is beyond a double.

    math.fsum raises OverflowError on an intermediate overflow even when the exact sum fits
    (1e308 + 1e308 - 1e308); that rare case is summed exactly with fractions instead."""
    try:
        return math.fsum(values)
    except OverflowError:
        total = sum(map(Fraction, values), Fraction(0))
        try:
            return float(total)
        except OverflowError:
            return math.inf if total > 0 else -math.inf


class Partial:
    """A mergeable accumulator of one window x dimensions group.

    While small, `values` is an array('d') of the values and `ids` an array('q') of the
    64-bit hashes of the event ids (transforms.idhash; duplicates allowed, missing ids left
    out): compact to ship and cheap to merge. Past EXACT_LIMIT they become sketches.
    """

    __slots__ = ("count", "total", "vmin", "vmax", "values", "kll", "ids", "hll")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.vmin = math.inf
        self.vmax = -math.inf
        self.values: array | None = array("d")
        self.kll: kll_doubles_sketch | None = None
        self.ids: array | None = array("q")
        self.hll: hll_sketch | None = None

    @classmethod
    def of(cls, values: Sequence[float], ids: Sequence[int]) -> Partial:
        """A Partial of `values` and id hashes (0 = no id); arrays are adopted, not copied."""
        part = cls()
        part.values = values if isinstance(values, array) else array("d", values)
        ids = ids if isinstance(ids, array) else array("q", ids)
        if 0 in ids:
            ids = array("q", [i for i in ids if i])
        part.ids = ids
        part.count = len(part.values)
        part.total = exact_sum(part.values)
        part.vmin = min(part.values)
        part.vmax = max(part.values)
        part._compact()
        return part

    @classmethod
    def of_stats(cls, values: array, ids: array, total: float, vmin: float, vmax: float) -> Partial:
        """Like `of`, with sum, min and max computed by the caller (vectorized), no missing ids."""
        part = cls.__new__(cls)  # every slot is set here: skip __init__'s empty arrays
        part.values = values
        part.ids = ids
        part.kll = None
        part.hll = None
        part.count = len(values)
        part.total = total
        part.vmin = vmin
        part.vmax = vmax
        if part.count > EXACT_LIMIT or len(ids) > EXACT_LIMIT:
            part._compact()
        return part

    def copy(self) -> Partial:
        part = Partial.__new__(Partial)
        part.count, part.total, part.vmin, part.vmax = self.count, self.total, self.vmin, self.vmax
        part.values = None if self.values is None else array("d", self.values)
        part.ids = None if self.ids is None else array("q", self.ids)
        part.kll = None if self.kll is None else kll_doubles_sketch.deserialize(self.kll.serialize())
        part.hll = None if self.hll is None else hll_sketch.deserialize(self.hll.serialize_compact())
        return part

    def merge(self, other: Partial) -> Partial:
        """Adds `other` into self; `other` is only read, never modified or aliased."""
        self.count += other.count
        total = self.total + other.total
        if other.vmin < self.vmin:
            self.vmin = other.vmin
        if other.vmax > self.vmax:
            self.vmax = other.vmax
        if self.values is not None and other.values is not None:
            self.values.extend(other.values)
            if not math.isfinite(total):
                total = exact_sum(self.values)  # the partial sums overflow where the exact one may not
        else:
            self._to_kll().merge(other.kll if other.kll is not None else _kll_of(other.values))
        self.total = total
        if self.ids is not None and other.ids is not None:
            self.ids.extend(other.ids)
        else:
            union = hll_union(HLL_LG_K)
            union.update(self._to_hll())
            union.update(other.hll if other.hll is not None else _hll_of(other.ids))
            self.hll = union.get_result()
        self._compact()
        return self

    def _compact(self) -> None:
        if self.values is not None and len(self.values) > EXACT_LIMIT:
            self._to_kll()
        if self.ids is not None and len(self.ids) > EXACT_LIMIT:
            self.ids = array("q", set(self.ids))
            if len(self.ids) > EXACT_LIMIT:
                self._to_hll()

    def _to_kll(self) -> kll_doubles_sketch:
        if self.kll is None:
            self.kll = _kll_of(self.values)
            self.values = None
        return self.kll

    def _to_hll(self) -> hll_sketch:
        if self.hll is None:
            self.hll = _hll_of(self.ids)
            self.ids = None
        return self.hll

    def quantiles(self) -> list[float]:
        """p50, p95, p99; exact groups use the same (inclusive) rank definition as KLL."""
        if self.values is not None:
            ordered = sorted(self.values)
            n = len(ordered)
            return [ordered[max(0, math.ceil(rank * n) - 1)] for _, rank in QUANTILES]
        return [self.kll.get_quantile(rank) for _, rank in QUANTILES]

    def distinct(self) -> int:
        if self.ids is not None:
            return len(set(self.ids))
        return int(round(self.hll.get_estimate()))

    @property
    def overflowed(self) -> bool:
        """The sum left a double's range (its values are finite, their sum is not)."""
        return not math.isfinite(self.total)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "count": self.count,
            "sum": self.total,
            "min": self.vmin,
            "max": self.vmax,
            "mean": self.total / self.count if self.count else None,
        }
        for (name, _), value in zip(QUANTILES, self.quantiles() if self.count else [None] * 3, strict=True):
            out[name] = value
        out["distinct_ids"] = self.distinct()
        return out

    # Pickling: sketches are C++ objects, so ship their serialized bytes; arrays as raw bytes.
    def __getstate__(self) -> tuple:
        return (
            self.count,
            self.total,
            self.vmin,
            self.vmax,
            None if self.values is None else self.values.tobytes(),
            None if self.kll is None else self.kll.serialize(),
            None if self.ids is None else self.ids.tobytes(),
            None if self.hll is None else self.hll.serialize_compact(),
        )

    def __setstate__(self, state: tuple) -> None:
        self.count, self.total, self.vmin, self.vmax, values, kll, ids, hll = state
        self.values = None if values is None else array("d", values)
        self.ids = None if ids is None else array("q", ids)
        self.kll = None if kll is None else kll_doubles_sketch.deserialize(kll)
        self.hll = None if hll is None else hll_sketch.deserialize(hll)

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (_restore_partial, (self.__getstate__(),))


def _restore_partial(state: tuple) -> Partial:
    part = Partial.__new__(Partial)
    part.__setstate__(state)
    return part


def _kll_of(values: Sequence[float]) -> kll_doubles_sketch:
    sketch = kll_doubles_sketch(KLL_K)
    sketch.update(np.asarray(values, dtype=np.float64))
    return sketch


def _hll_of(ids: Iterable[int]) -> hll_sketch:
    sketch = hll_sketch(HLL_LG_K)
    for id_hash in ids:
        sketch.update(id_hash)
    return sketch


def preaggregate_sessions(columns: EventColumns, gap_ms: int) -> dict[tuple, Partial]:
    """One Partial per proto-session: ((start_ms, end_ms, dims), Partial) for each run of a
    group's events whose gaps are below the session gap. The runner's session merging joins
    proto-sessions across batches. (Fixed and sliding windows: transforms.columnar.)"""
    return _preaggregate_sessions(columns, hash_list(columns.ids), gap_ms)


def _preaggregate_sessions(columns: EventColumns, hashes: list[int], gap_ms: int) -> dict[tuple, Partial]:
    by_dims: dict[tuple, list[tuple[int, float, int]]] = {}
    for t, value, event_id, dims in zip(columns.times_ms, columns.values, hashes, columns.dims, strict=True):
        by_dims.setdefault(dims, []).append((t, value, event_id))
    out: dict[tuple, Partial] = {}
    for dims, events in by_dims.items():
        events.sort(key=lambda e: e[0])
        run: list[tuple[int, float, int]] = []
        for event in events:
            if run and event[0] >= run[-1][0] + gap_ms:
                out[(run[0][0], run[-1][0] + gap_ms, dims)] = _partial_of_run(run)
                run = []
            run.append(event)
        out[(run[0][0], run[-1][0] + gap_ms, dims)] = _partial_of_run(run)
    return out


def _partial_of_run(run: list[tuple[int, float, int]]) -> Partial:
    return Partial.of([e[1] for e in run], [e[2] for e in run])


def shard_of(dims: tuple[str, ...], shards: int) -> int:
    """Stable across processes (unlike hash(), which is salted per interpreter)."""
    return zlib.crc32("\x1f".join(dims).encode("utf-8")) % shards


class WindowSharder:
    """dims -> shard, memoized for the life of a DoFn (the same keys recur in every batch)."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self._cache: dict[tuple[str, ...], int] = {}

    def __call__(self, dims: tuple[str, ...]) -> int:
        shard = self._cache.get(dims)
        if shard is None:
            if len(self._cache) > 1_000_000:  # bound memory on very high-cardinality keys
                self._cache.clear()
            shard = self._cache[dims] = shard_of(dims, self.shards)
        return shard


class MergePartials(beam.CombineFn):
    """CombineFn over Partials; the runner lifts it so partials merge before the shuffle."""

    def create_accumulator(self) -> Partial:
        return Partial()

    def add_input(self, accumulator: Partial, element: Partial) -> Partial:
        # Never return or mutate `element`: runners may keep inputs and re-combine them
        # (accumulating panes), so aliasing would count events twice.
        return accumulator.merge(element)

    def merge_accumulators(self, accumulators: Iterable[Partial]) -> Partial:
        # Only the first accumulator may be modified, as Beam allows.
        iterator = iter(accumulators)
        merged = next(iterator, None) or Partial()
        for acc in iterator:
            if acc.count:
                merged.merge(acc)
        return merged

    def compact(self, accumulator: Partial) -> Partial:
        accumulator._compact()
        return accumulator

    def extract_output(self, accumulator: Partial) -> Partial:
        return accumulator


class MergeSessions(beam.CombineFn):
    """Bounded-input session merging in the global window: the accumulator is a sorted list
    of disjoint (start_ms, end_ms, Partial) sessions of one dimensions key."""

    def create_accumulator(self) -> list:
        return []

    def add_input(self, accumulator: list, element: tuple) -> list:
        start, end, partial = element
        # A copy: merging sessions modifies the earlier one, and inputs must stay untouched.
        return _merge_sessions(accumulator + [(start, end, partial.copy())])

    def merge_accumulators(self, accumulators: Iterable[list]) -> list:
        combined: list = []
        for acc in accumulators:
            combined.extend(acc)
        return _merge_sessions(combined)

    def extract_output(self, accumulator: list) -> list:
        return accumulator


def _merge_sessions(sessions: list) -> list:
    sessions.sort(key=lambda s: s[0])
    merged: list = []
    for start, end, part in sessions:
        if merged and start < merged[-1][1]:
            prev_start, prev_end, prev = merged[-1]
            merged[-1] = (prev_start, max(prev_end, end), prev.merge(part))
        else:
            merged.append((start, end, part))
    return merged


class Groups(dict):
    """{dims: Partial} of one window shard, as an accumulator.

    It adopts input Partials without copying them and copies one only before merging into
    it (copy on write): runners may keep combine inputs and combine them again (accumulating
    panes), so an input must never change, but most groups receive a single input and never
    need the copy. It pickles as one flat list of states, not one pickle call per Partial.
    """

    __slots__ = ("borrowed",)

    def __init__(self) -> None:
        super().__init__()
        self.borrowed: set = set()

    def add(self, dims: tuple, partial: Partial) -> None:
        mine = self.get(dims)
        if mine is None:
            self[dims] = partial
            self.borrowed.add(dims)
            return
        if dims in self.borrowed:
            mine = self[dims] = mine.copy()
            self.borrowed.discard(dims)
        mine.merge(partial)

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (_restore_groups, (list(self.keys()), [p.__getstate__() for p in self.values()]))


def _restore_groups(keys: list, states: list) -> Groups:
    groups = Groups()
    for dims, state in zip(keys, states, strict=True):
        part = Partial.__new__(Partial)
        part.__setstate__(state)
        groups[dims] = part
    return groups


class MergeGroups(beam.CombineFn):
    """CombineFn over {dims: Partial} maps of one window shard; inputs are never modified."""

    def create_accumulator(self) -> Groups:
        return Groups()

    def add_input(self, accumulator: Groups, element: dict) -> Groups:
        for dims, partial in element.items():
            accumulator.add(dims, partial)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Groups]) -> Groups:
        merged = Groups()
        for acc in accumulators:
            for dims, partial in acc.items():
                merged.add(dims, partial)
        return merged

    def compact(self, accumulator: dict) -> dict:
        for partial in accumulator.values():
            partial._compact()
        return accumulator

    def extract_output(self, accumulator: dict) -> dict:
        return accumulator
