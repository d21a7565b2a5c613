"""Columnar pre-aggregation with pyarrow, and its fast JSON path.

`ColumnarDecoder` decodes a whole batch at once: JSON lines parsed by Arrow, or records an
Avro container file already decoded to dicts. It is a fast path of `transforms.decode.Decoder`
(the reference) and must yield exactly the events the row path would, so it takes only
batches it can prove the row path accepts in full: every record one JSON object that orjson
reads as Arrow does, every event time plausible in the configured unit, every value a finite
number, every dimension a string. Any other batch returns None and goes through the row path,
which sends each bad record to the dead letters with its reason, and whose good events then
join the same table form (`table_of`). Either way `preaggregate_table` groups the same table,
so results do not depend on the path.

Arrow is never handed bytes it might judge differently from orjson (or crash on: a `null`
first line brings pyarrow 25 down with SIGSEGV): the checks on the joined batch below run
first, as whole-buffer byte and numpy operations, a few milliseconds for 50,000 records.
"""

from __future__ import annotations

import io
import math
import re
from array import array
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from io_connectors.records import RawBatch
from transforms.aggregate import Groups, Partial, WindowSharder, exact_sum
from transforms.decode import (
    MAX_EVENT_TIME_MS,
    MAX_RECORD_BYTES,
    PLAUSIBLE_FROM_MS,
    TIME_UNITS,
    EventColumns,
    EventSchema,
)
from transforms.idhash import hash_array
from transforms.windowing import WindowSpec

TIME, VALUE, ID, HASH, SLOT = "__t", "__v", "__id", "__h", "__w"
# Every column name the tables here use: a dimension must not take one.
INTERNAL_COLUMNS = frozenset(
    {TIME, VALUE, ID, HASH, SLOT, *(f"{VALUE}_{agg}" for agg in ("list", "sum", "min", "max")), f"{HASH}_distinct"}
)
# Below this size the fixed cost of Arrow's reader outweighs its per-record savings.
MIN_BATCH = 512
# orjson refuses objects nested deeper than this; Arrow has no such limit.
MAX_JSON_DEPTH = 1024
# A number that overflows a double (orjson refuses it, Arrow may read it as inf in a field it
# ignores) has an exponent of 3+ digits or, with a 1-2 digit exponent, 210+ integer digits;
# any run of 2 * _RUN_BLOCK digits fills at least one aligned block of _RUN_BLOCK bytes.
_RUN_BLOCK = 64
_ALL_SET = np.uint64(0x0101010101010101)  # 8 True flags read as one word
_LBRACE, _RBRACE, _NEWLINE, _QUOTE = ord("{"), ord("}"), ord("\n"), ord('"')
_tzinfo = attrgetter("tzinfo")
# Characters a JSON number is made of, and those that may precede one (by byte value).
_NUMBER_CHAR = np.zeros(256, bool)
_NUMBER_CHAR[list(b"0123456789.+-eE")] = True
_NUMBER_START = np.zeros(256, bool)
_NUMBER_START[list(b":,[ \t\r")] = True
# A NaN or Inf token where a JSON value may start (a superset: whitespace of any kind, either sign).
_NON_FINITE_TOKEN = re.compile(rb"[:,\[]\s*[-+]?(?:NaN|Inf)")
# The longest number-like token scanned back over; longer ones send the batch to the row path.
_MAX_TOKEN = 1100


class ColumnarDecoder:
    """Turns clean batches into an Arrow table of (time, value, id, dims...): JSON lines parsed
    by Arrow, or records an Avro container file already decoded to dicts.

    One instance serves one thread (a DoFn's): it keeps scratch buffers between batches."""

    def __init__(self, schema: EventSchema, input_format: str = "json") -> None:
        self.schema = schema
        self.input_format = input_format
        fields = [
            pa.field(schema.event_time_field, pa.int64()),
            pa.field(schema.value_field, pa.float64()),
            pa.field(schema.id_field, pa.string()),
        ] + [pa.field(dim, pa.string()) for dim in schema.dimensions]
        # Fields may coincide (say, id and a dimension); Arrow wants each once. A time or value
        # field doubling as another field is too odd to deserve a fast path.
        unique = {f.name: f for f in fields}
        others = {schema.id_field, *schema.dimensions}
        self._enabled = schema.event_time_field != schema.value_field and not (
            {schema.event_time_field, schema.value_field} & others
        )
        self._dims = tuple(dict.fromkeys(schema.dimensions))
        self._parse = pa_json.ParseOptions(
            explicit_schema=pa.schema(list(unique.values())), unexpected_field_behavior="ignore"
        )
        # Arrow parses blocks on its own threads: the other core is otherwise idle here.
        self._read = pa_json.ReadOptions(use_threads=True, block_size=1 << 19)
        self._unit = TIME_UNITS[schema.time_unit]
        self._scratch = _Scratch()

    def decode(self, batch: RawBatch) -> pa.Table | None:
        records = batch.records
        if len(records) < MIN_BATCH or not self._enabled:
            return None
        first = records[0]
        if type(first) is dict:
            return self._from_dicts(records)
        if self.input_format == "json" and isinstance(first, (bytes, bytearray)):
            return self._from_json(records)
        return None

    def _from_json(self, records: list[bytes]) -> pa.Table | None:
        try:
            data = b"\n".join(records)  # a str, ReadFailure or dict among them raises TypeError
        except TypeError:
            return None
        if len(data) > MAX_RECORD_BYTES * 64 or not _json_lines_agree(data, len(records), self._scratch):
            return None
        try:
            table = pa_json.read_json(io.BytesIO(data), read_options=self._read, parse_options=self._parse)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None
        # Each line starts with { and ends with }, and a line break cannot sit inside a JSON
        # string: so one row per line means one object per record (`{..}{..}` gives two rows).
        if table.num_rows != len(records):
            return None
        schema = self.schema
        values = table[schema.value_field]
        if not self._complete(values, table):
            return None
        # orjson reads `-0` as the integer 0 (value 0.0), Arrow as -0.0: any -0 goes to the row path.
        numbers = values.to_numpy()
        if np.signbit(numbers[numbers == 0]).any():
            return None
        times = self._numeric_times(table[schema.event_time_field])
        return None if times is None else self._table(times, values, table[schema.id_field], table)

    def _from_dicts(self, records: list) -> pa.Table | None:
        """Avro container records. Each column is built only when its Python types are exactly
        the ones whose conversion equals the row path's: Arrow would take True as 1, truncate
        2.5 into an int64 column and take bytes into a string one; the row path does none of
        that (it dead-letters True and 2.5 as values, and writes str(b'..') as a dimension)."""
        if set(map(type, records)) != {dict}:
            return None
        schema = self.schema
        columns = {
            name: [record.get(name) for record in records]
            for name in (schema.event_time_field, schema.value_field, schema.id_field, *self._dims)
        }
        if not set(map(type, columns[schema.value_field])) <= {float, int}:
            return None
        if not set(map(type, columns[schema.id_field])) <= {str, type(None)}:
            return None
        if any(set(map(type, columns[dim])) != {str} for dim in self._dims):
            return None
        raw_times = columns[schema.event_time_field]
        time_types = set(map(type, raw_times))
        try:
            # Integers beyond 2**53 raise here rather than round: the row path takes them.
            values = pa.chunked_array([pa.array(columns[schema.value_field], pa.float64())])
            if time_types == {int}:
                times = self._numeric_times(pa.chunked_array([pa.array(raw_times, pa.int64())]))
            elif time_types == {datetime} and set(map(_tzinfo, raw_times)) <= {None, UTC}:
                times = _datetime_millis(raw_times)
            else:
                return None
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return None
        table = pa.table({name: pa.array(columns[name], pa.string()) for name in (schema.id_field, *self._dims)})
        if times is None or not self._complete(values, table):
            return None
        return self._table(times, values, table[schema.id_field], table)

    def _complete(self, values: pa.ChunkedArray, table: pa.Table) -> bool:
        """No missing value or dimension, every value finite."""
        if values.null_count or any(table[dim].null_count for dim in self._dims):
            return False
        return bool(pc.all(pc.is_finite(values)).as_py())

    def _numeric_times(self, raw: pa.ChunkedArray) -> pa.ChunkedArray | None:
        """Numeric times in the schema's unit -> epoch millis (rounded down, as the row path
        does), or None when the row path would refuse one (see decode.parse_event_time)."""
        if raw.null_count:
            return None
        mul, div = self._unit
        bounds = pc.min_max(raw).as_py()
        low, high = bounds["min"], bounds["max"]
        if not (PLAUSIBLE_FROM_MS * div // mul <= low and high < MAX_EVENT_TIME_MS * div // mul):
            # Before 2000 (yet from 1970) is fine unless the number is plausible in another unit.
            if not (0 <= low and high < MAX_EVENT_TIME_MS * div // mul):
                return None
            numbers = raw.to_numpy()
            for other_mul, other_div in TIME_UNITS.values():
                start = -(-PLAUSIBLE_FROM_MS * other_div // other_mul)
                end = -(-MAX_EVENT_TIME_MS * other_div // other_mul)
                if (other_mul, other_div) != (mul, div) and ((numbers >= start) & (numbers < end)).any():
                    return None
        if mul != 1:
            return pc.multiply(raw, mul)
        if div != 1:
            return pc.divide(raw, div)  # all times are >= 0 here, where truncating rounds down
        return raw

    def _table(self, times: pa.ChunkedArray, values: pa.ChunkedArray, ids: Any, table: pa.Table) -> pa.Table:
        columns = {TIME: times, VALUE: values, ID: ids}
        columns.update({dim: table[dim] for dim in self.schema.dimensions})
        return pa.table(columns)


def _datetime_millis(moments: list[datetime]) -> pa.ChunkedArray | None:
    """UTC-aware or naive (meaning UTC) datetimes -> epoch millis rounded down, or None when
    one lies outside [1970, 2100)."""
    micros = pa.array(moments, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    bounds = pc.min_max(micros).as_py()
    if bounds["min"] < 0 or bounds["max"] >= MAX_EVENT_TIME_MS * 1000:
        return None
    return pa.chunked_array([pc.divide(micros, 1000)])  # >= 0: truncating rounds down


class _Scratch:
    """Reused work buffers for the whole-batch checks: a fresh multi-megabyte array per check
    costs more in page faults than the check itself."""

    def __init__(self) -> None:
        self.size = 0
        self.bytes_ = np.empty(0, np.uint8)
        self.mask = np.empty(0, bool)
        self.digit = np.empty(0, bool)
        self.extra = np.empty(0, bool)

    def fit(self, size: int) -> None:
        if size > self.size:
            self.size = size
            self.bytes_ = np.empty(size, np.uint8)
            self.mask = np.empty(size, bool)
            self.digit = np.empty(size, bool)
            self.extra = np.empty(size, bool)


def _json_lines_agree(data: bytes, count: int, scratch: _Scratch) -> bool:
    """Whether Arrow may read these `count` newline-joined records: it reads each exactly as
    orjson does, or fails. Run before Arrow sees the bytes; cheapest checks first.

    - valid UTF-8 throughout (Arrow does not check fields it ignores, and fails late on others);
    - every record starts with `{` and ends with `}`, and none holds a newline: rules out empty
      and whitespace-only lines, `null` (which crashes Arrow), arrays, scalars, a BOM, leading
      or trailing whitespace, and lets "one row per line" prove "one object per record";
    - no NaN or Infinity token (Arrow takes them, orjson does not);
    - no \\uD800-\\uDFFF escape (surrogates: the two disagree on which pairs are valid);
    - no record over the size limit, none nested deeper than orjson's limit;
    - no number beyond a double's range (Arrow reads some as inf in fields it ignores).
    A failed check means a bad or odd record is (or might be) in the batch: the row path then
    judges record by record. Strings that merely contain such text cost speed, never results.
    """
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
    if data[:1] != b"{" or data[-1:] != b"}":
        return False
    # Arrow reads NaN, Inf and Infinity (a minus may precede them) as values; orjson none. The
    # plain searches come first, so that the pattern only runs where the text occurs at all.
    if (data.find(b"NaN") >= 0 or data.find(b"Inf") >= 0) and _NON_FINITE_TOKEN.search(data):
        return False
    if data.find(b"\\") >= 0 and (data.find(b"\\ud") >= 0 or data.find(b"\\uD") >= 0):
        return False
    scratch.fit(len(data))
    size = len(data)
    buffer = np.frombuffer(data, np.uint8)
    mask = scratch.mask[:size]
    newlines = np.flatnonzero(np.equal(buffer, _NEWLINE, out=mask))
    if len(newlines) != count - 1:
        return False
    if count > 1 and not ((buffer[newlines - 1] == _RBRACE).all() and (buffer[newlines + 1] == _LBRACE).all()):
        return False
    bounds = np.concatenate(([-1], newlines, [size]))
    longest = int((np.diff(bounds) - 1).max())
    if longest > MAX_RECORD_BYTES:
        return False
    if longest > MAX_JSON_DEPTH and not _shallow(data, bounds):
        return False
    return not _may_overflow(data, buffer, longest, scratch)


def _shallow(data: bytes, bounds: np.ndarray) -> bool:
    """No record long enough to nest past orjson's limit opens that many objects or arrays."""
    for index in np.flatnonzero(np.diff(bounds) - 1 > MAX_JSON_DEPTH).tolist():
        record = data[bounds[index] + 1 : bounds[index + 1]]
        if record.count(b"{") + record.count(b"[") > MAX_JSON_DEPTH:
            return False
    return True


def _may_overflow(data: bytes, buffer: np.ndarray, longest: int, scratch: _Scratch) -> bool:
    """Whether a number in the batch might exceed a double's range. Such a number has an
    exponent of 3+ digits or, with a shorter one, 210+ integer digits. All work is done in
    the scratch buffers, 8 bytes at a time where it can."""
    size = len(buffer)
    digit = np.less(np.subtract(buffer, ord("0"), out=scratch.bytes_[:size]), 10, out=scratch.digit[:size])
    if longest >= 2 * _RUN_BLOCK:
        # A run of 2 * 64 digits fills an aligned 64-byte block: 8 words of 8 digit flags each.
        whole = size // _RUN_BLOCK * _RUN_BLOCK
        words = digit[:whole].view(np.uint64) == _ALL_SET
        if (words.view(np.uint64) == _ALL_SET).any():
            return True
    # An e or E at i after a digit, then a digit or sign at i+1 and digits at i+2 and i+3 (a
    # superset of 3-digit exponents). Slot k of the masks below stands for position k + 1.
    lower = np.bitwise_or(buffer, 0x20, out=scratch.bytes_[:size])
    marker = np.equal(lower[1:-4], ord("e"), out=scratch.mask[: size - 5])
    marker &= digit[:-5]
    if not marker.any():
        return False
    marker &= digit[3:-2]
    marker &= digit[4:-1]
    # Masking bits 1 and 2 maps + and - (and the harmless ) and /) to ")".
    signs = np.equal(np.bitwise_and(buffer, 0xF9, out=scratch.bytes_[:size]), ord(")"), out=scratch.extra[:size])
    signs |= digit
    marker &= signs[2:-3]
    hits = np.flatnonzero(marker) + 1
    return bool(len(hits)) and _any_in_numbers(buffer, hits)


def _any_in_numbers(buffer: np.ndarray, positions: np.ndarray) -> bool:
    """Whether any of these exponent markers (each after a digit) may belong to a JSON number
    rather than a string: hex ids like "3e301f" are full of exponent-like text. Scanning back
    over number characters, a number starts after `:`, `,`, `[` or whitespace; text in a string
    starts after a quote or some other character (a string holding ":1e300" counts as a number:
    that costs speed, never results)."""
    starts = positions - 2  # the digit before each marker is a number character: start before it
    for _ in range(_MAX_TOKEN):
        more = _NUMBER_CHAR[buffer[starts]]
        if _NUMBER_START[buffer[starts[~more]]].any():
            return True
        # Every record opens with `{`, not a number character: the scan never leaves its record.
        starts = starts[more] - 1
        if not len(starts):
            return False
    return True  # an absurdly long number-like token: let the row path judge it


def preaggregate_table(
    table: pa.Table, spec: WindowSpec, dimensions: tuple[str, ...], sharder: WindowSharder
) -> dict[tuple[int, int, int], Groups]:
    """Fixed and sliding windows: {(window_start_ms, window_end_ms, shard): Groups{dims: Partial}}.

    One element per window shard instead of one per group keeps the shuffle small: the
    per-element cost of a Beam runner, not the arithmetic, dominates with many groups.
    Events are grouped once per slot (a fixed window, or a sliding window's period); a
    sliding window is then the merge of the size/period slots it covers, so work and memory
    follow the groups, not events times windows per event.
    """
    times = table[TIME].to_numpy()
    slot_ms = spec.size_ms if spec.kind == "fixed" else spec.period_ms
    id_column = table[ID].combine_chunks()
    # pyarrow wants the mask as a numpy array (an Arrow one raises TypeError in pyarrow 25).
    mask = id_column.is_null().to_numpy(zero_copy_only=False) if id_column.null_count else None
    hashes = pa.array(hash_array(id_column), mask=mask)
    table = table.drop_columns([ID]).append_column(HASH, hashes).append_column(SLOT, pa.array(times - times % slot_ms))
    grouped = table.group_by([SLOT, *dimensions], use_threads=False).aggregate(
        [
            (VALUE, "list"),
            (VALUE, "sum"),
            (VALUE, "min"),
            (VALUE, "max"),
            (HASH, "distinct", pc.CountOptions(mode="only_valid")),
        ]
    )
    slot_starts = grouped[SLOT].to_pylist()
    dim_columns = [grouped[dim].to_pylist() for dim in dimensions]
    sums = grouped[f"{VALUE}_sum"].to_pylist()
    mins = grouped[f"{VALUE}_min"].to_pylist()
    maxs = grouped[f"{VALUE}_max"].to_pylist()
    # Group members come out as one flat buffer plus offsets: each group's slice is copied
    # into an array with a memcpy, never through one Python object per value.
    values, value_offsets = _flat(grouped[f"{VALUE}_list"], np.float64)
    ids, id_offsets = _flat(grouped[f"{HASH}_distinct"], np.int64)
    value_bytes, id_bytes = values.tobytes(), ids.tobytes()
    size = spec.size_ms
    out: dict[tuple[int, int, int], Groups] = {}
    slots: dict[tuple, list[tuple[int, Partial]]] = {}  # sliding windows: dims -> [(slot start, partial)]
    for index, dims in enumerate(zip(*dim_columns, strict=True)):
        group_values = array("d", value_bytes[value_offsets[index] * 8 : value_offsets[index + 1] * 8])
        group_ids = array("q", id_bytes[id_offsets[index] * 8 : id_offsets[index + 1] * 8])
        total = sums[index]
        if not math.isfinite(total):
            total = exact_sum(group_values)  # Arrow's sum overflows midway where the exact one may not
        partial = Partial.of_stats(group_values, group_ids, total, mins[index], maxs[index])
        if slot_ms != size:
            slots.setdefault(dims, []).append((slot_starts[index], partial))
            continue
        key = (slot_starts[index], slot_starts[index] + size, sharder(dims))
        groups = out.get(key)
        if groups is None:
            groups = out[key] = Groups()
        groups[dims] = partial  # a fixed window is one slot: each group comes once
    for dims, runs in slots.items():
        shard = sharder(dims)
        for start, partial in sliding_merges(sorted(runs, key=itemgetter(0)), size // slot_ms, slot_ms):
            key = (start, start + size, shard)
            groups = out.get(key)
            if groups is None:
                groups = out[key] = Groups()
            groups[dims] = partial
    return out


def sliding_merges(slots: list[tuple[int, Partial]], per_window: int, period_ms: int) -> Iterator[tuple[int, Partial]]:
    """(window start, merged partial) of every sliding window holding at least one of `slots`
    ((slot start, partial), sorted by start; a window covers `per_window` consecutive slots).

    A two-stack queue slides over the slots: each slot is merged a constant number of times
    whatever the windows per slot (24-hour windows every minute cover 1,440 slots each), where
    merging each window's slots afresh would cost windows x slots. Input partials are never
    modified; a yielded partial may be shared by several windows, so it is read-only too."""
    span = (per_window - 1) * period_ms
    front: list[Partial] = []  # aggregates of the oldest slots: front[-1] covers all of them
    back: list[tuple[int, Partial]] = []  # newer slots, oldest first
    back_total: Partial | None = None
    older: list[int] = []  # slot starts held in front, newest first (the last is the oldest)
    position = 0
    start = slots[0][0] - span
    while position < len(slots) or front or back:
        if not front and not back:
            start = max(start, slots[position][0] - span)  # skip windows that would be empty
        while position < len(slots) and slots[position][0] <= start + span:
            back.append(slots[position])
            back_total = slots[position][1].copy() if back_total is None else back_total.merge(slots[position][1])
            position += 1
        if older and older[-1] < start:
            older.pop()
            front.pop()
        elif not older and back and back[0][0] < start:
            # Evicting from the newer stack: first move it into the older one, newest first.
            for slot_start, partial in reversed(back):
                front.append(partial if not front else partial.copy().merge(front[-1]))
                older.append(slot_start)
            back, back_total = [], None
            older.pop()
            front.pop()
        if front and back_total is not None:
            yield start, front[-1].copy().merge(back_total)
        elif front:
            yield start, front[-1]
        elif back_total is not None:
            yield start, back_total.copy()
        start += period_ms


def _flat(column: pa.ChunkedArray, dtype: type) -> tuple[np.ndarray, list[int]]:
    """The values of a list column as one numpy array, and each row's start offset (n + 1)."""
    lists = column.combine_chunks()
    offsets = np.asarray(lists.offsets)
    flat = np.asarray(lists.values.to_numpy(zero_copy_only=False), dtype=dtype)
    base = offsets[0]
    return flat[base : offsets[-1]], (offsets - base).tolist()


def table_of(columns: EventColumns, dimensions: tuple[str, ...]) -> pa.Table:
    """Events decoded row by row, in the table form preaggregate_table takes."""
    data = {
        TIME: pa.array(columns.times_ms, type=pa.int64()),
        VALUE: pa.array(columns.values, type=pa.float64()),
        ID: pa.array(columns.ids, type=pa.string()),
    }
    dims = list(zip(*columns.dims, strict=True)) if columns.dims else []
    for index, name in enumerate(dimensions):
        data[name] = pa.array(dims[index] if dims else [], type=pa.string())
    return pa.table(data)
