"""The decode contract as a check: the columnar fast path, whenever it takes a batch, yields
exactly the events the row path (transforms.decode.Decoder) yields, and the row path then has
no dead letter for that batch. When the fast path declines (None), the pipeline decodes the
batch row by row, so events and dead letters are the row path's by construction.

Shared by the property-based test and the fuzz target.
"""

from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa

from io_connectors.records import RawBatch
from transforms.columnar import ID, TIME, VALUE, ColumnarDecoder
from transforms.decode import Decoder, EventColumns, EventSchema


def row_events(columns: EventColumns) -> list[tuple]:
    """(time ms, value as exact hex, id, dims) per event; hex tells -0.0 from 0.0."""
    return [
        (t, v.hex(), i, d)
        for t, v, i, d in zip(columns.times_ms, columns.values, columns.ids, columns.dims, strict=True)
    ]


def table_events(table: pa.Table, dimensions: Sequence[str]) -> list[tuple]:
    times = table[TIME].to_pylist()
    values = [v.hex() for v in table[VALUE].to_pylist()]
    ids = table[ID].to_pylist()
    dims = list(zip(*(table[d].to_pylist() for d in dimensions), strict=True)) if dimensions else []
    return list(zip(times, values, ids, dims, strict=True))


def check_batch(
    records: list[Any], schema: EventSchema, input_format: str = "json", source: str = "src"
) -> tuple[list[tuple], list[dict], bool]:
    """Decodes one batch both ways and asserts the contract. Returns what the pipeline would
    get (events, dead letters) and whether the fast path took the batch."""
    batch = RawBatch(source, records)
    columns, dead = Decoder(schema, input_format).decode(batch)
    expected = row_events(columns)
    assert len(expected) + len(dead) == len(records), "the row path lost or duplicated a record"
    table = ColumnarDecoder(schema, input_format).decode(batch)
    if table is None:
        return expected, dead, False
    assert not dead, f"the fast path took a batch the row path dead-letters: {dead[:3]}"
    got = table_events(table, schema.dimensions)
    if got != expected:
        diff = next(i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b) if got else 0
        raise AssertionError(
            f"fast path and row path disagree at event {diff}: "
            f"{got[diff] if diff < len(got) else None} != {expected[diff] if diff < len(expected) else None} "
            f"(record {records[diff]!r:.300})"
        )
    return got, [], True
