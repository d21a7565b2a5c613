"""Columnar pre-aggregation with pyarrow, and its fast JSON path.

`ColumnarDecoder` parses a whole batch of JSON lines at once. It takes only batches it can
decode exactly as the row-by-row decoder would (one JSON object per record, epoch-millis
times in range, finite numeric values, string dimensions); any other batch returns None and
goes through transforms.decode record by record, which sends each bad record to the dead
letters with its reason, and whose good events then join the same table form (`table_of`).
Either way `preaggregate_table` groups the same table, so results do not depend on the path.
"""

from __future__ import annotations

import io
from array import array

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from io_connectors.records import RawBatch
from transforms.aggregate import Groups, Partial, WindowSharder
from transforms.decode import MAX_EVENT_TIME_MS, MAX_RECORD_BYTES, MIN_EVENT_TIME_MS, EventColumns, EventSchema
from transforms.idhash import hash_array
from transforms.windowing import WindowSpec

TIME, VALUE, ID, HASH = "__t", "__v", "__id", "__h"
# Below this size the fixed cost of Arrow's reader outweighs its per-record savings.
MIN_BATCH = 512


class ColumnarDecoder:
    """Turns clean batches into an Arrow table of (time, value, id, dims...): JSON lines parsed
    by Arrow, or records an Avro container file already decoded to dicts."""

    def __init__(self, schema: EventSchema, input_format: str = "json") -> None:
        self.schema = schema
        self.input_format = input_format
        fields = [
            pa.field(schema.event_time_field, pa.int64()),
            pa.field(schema.value_field, pa.float64()),
            pa.field(schema.id_field, pa.string()),
        ] + [pa.field(dim, pa.string()) for dim in schema.dimensions]
        # Fields may coincide (say, id and a dimension); Arrow wants each once.
        unique = {f.name: f for f in fields}
        self._arrow_schema = pa.schema(list(unique.values()))
        self._parse = pa_json.ParseOptions(
            explicit_schema=pa.schema(list(unique.values())), unexpected_field_behavior="ignore"
        )
        # Arrow parses blocks on its own threads: the other core is otherwise idle here.
        self._read = pa_json.ReadOptions(use_threads=True, block_size=1 << 19)

    def decode(self, batch: RawBatch) -> pa.Table | None:
        records = batch.records
        if len(records) < MIN_BATCH:
            return None
        if isinstance(records[0], dict):
            table = self._from_dicts(records)
        elif self.input_format == "json" and isinstance(records[0], (bytes, bytearray)):
            table = self._from_json(records)
        else:
            return None
        if table is None:
            return None
        schema = self.schema
        times = table[schema.event_time_field]
        values = table[schema.value_field]
        checks = [times.null_count == 0, values.null_count == 0]
        checks += [table[dim].null_count == 0 for dim in schema.dimensions]
        if not all(checks):
            return None
        if not pc.all(pc.is_finite(values)).as_py():
            return None
        bounds = pc.min_max(times).as_py()
        if bounds["min"] < MIN_EVENT_TIME_MS or bounds["max"] >= MAX_EVENT_TIME_MS:
            return None
        columns = {TIME: times, VALUE: values, ID: table[schema.id_field]}
        columns.update({dim: table[dim] for dim in schema.dimensions})
        return pa.table(columns)

    def _from_json(self, records: list[bytes]) -> pa.Table | None:
        data = b"\n".join(records)
        if len(data) > MAX_RECORD_BYTES * 64 or max(map(len, records)) > MAX_RECORD_BYTES:
            return None
        try:
            table = pa_json.read_json(io.BytesIO(data), read_options=self._read, parse_options=self._parse)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None
        # One row per record, or something (an empty line, a record spanning lines) needs a closer look.
        return table if table.num_rows == len(records) else None

    def _from_dicts(self, records: list) -> pa.Table | None:
        time_field, value_field = self.schema.event_time_field, self.schema.value_field
        for record in records:
            # Arrow would take True as 1; the row path rejects booleans, and so must this one.
            if (
                type(record) is not dict
                or type(record.get(time_field)) is bool
                or type(record.get(value_field)) is bool
            ):
                return None
        try:
            # Strict conversion: a string where a number belongs, or a bool, is left to the row path.
            return pa.Table.from_pylist(records, schema=self._arrow_schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            return None


def preaggregate_table(
    table: pa.Table, spec: WindowSpec, dimensions: tuple[str, ...], sharder: WindowSharder
) -> dict[tuple[int, int, int], Groups]:
    """Fixed and sliding windows: {(window_start_ms, window_end_ms, shard): Groups{dims: Partial}}.

    One element per window shard instead of one per group keeps the shuffle small: the
    per-element cost of a Beam runner, not the arithmetic, dominates with many groups.
    """
    times = table[TIME].to_numpy()
    if spec.kind == "fixed":
        starts = [times - times % spec.size_ms]
    else:
        last = times - times % spec.period_ms
        starts = [last - j * spec.period_ms for j in range(spec.size_ms // spec.period_ms)]
    id_column = table[ID].combine_chunks()
    hashes = pa.array(hash_array(id_column), mask=id_column.is_null() if id_column.null_count else None)
    table = table.drop_columns([ID]).append_column(HASH, hashes)
    parts = [table.append_column("__w", pa.array(s)) for s in starts]
    windowed = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    grouped = windowed.group_by(["__w", *dimensions], use_threads=False).aggregate(
        [
            (VALUE, "list"),
            (VALUE, "sum"),
            (VALUE, "min"),
            (VALUE, "max"),
            (HASH, "distinct", pc.CountOptions(mode="only_valid")),
        ]
    )
    window_starts = grouped["__w"].to_pylist()
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
    for index, dims in enumerate(zip(*dim_columns, strict=True)):
        start = window_starts[index]
        key = (start, start + size, sharder(dims))
        groups = out.get(key)
        if groups is None:
            groups = out[key] = Groups()
        group_values = array("d", value_bytes[value_offsets[index] * 8 : value_offsets[index + 1] * 8])
        group_ids = array("q", id_bytes[id_offsets[index] * 8 : id_offsets[index + 1] * 8])
        groups[dims] = Partial.of_stats(group_values, group_ids, sums[index], mins[index], maxs[index])
    return out


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
