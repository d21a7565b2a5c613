"""Aggregate records -> file bytes in jsonl, parquet (pyarrow) or avro (fastavro).

Schemas are explicit so that every file of a dataset has the same columns and types,
whatever the values in one window happen to be.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import fastavro
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

EXTENSIONS = {"jsonl": "jsonl", "parquet": "parquet", "avro": "avro"}
MIME_TYPES = {
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "avro": "application/avro",
}
# Rows per Parquet row group: a few MB of aggregates, small enough for row-group pruning to matter.
PARQUET_ROW_GROUP_ROWS = 65_536
PUBLISHED_SCHEMA = Path(__file__).resolve().parent / "schemas" / "aggregate.avsc"
METRIC_FIELDS = (
    ("count", "long"),
    ("sum", "double"),
    ("min", "double"),
    ("max", "double"),
    ("mean", "double"),
    ("p50", "double"),
    ("p95", "double"),
    ("p99", "double"),
    ("distinct_ids", "long"),
)


def avro_schema(dimensions: Sequence[str]) -> dict[str, Any]:
    """The Avro schema of aggregate records (transforms/schemas/aggregate.avsc is the default one)."""
    fields: list[dict[str, Any]] = [
        {"name": "window_start", "type": "string", "doc": "ISO-8601 UTC, inclusive"},
        {"name": "window_end", "type": "string", "doc": "ISO-8601 UTC, exclusive"},
    ]
    fields += [{"name": dim, "type": "string"} for dim in dimensions]
    fields += [{"name": name, "type": kind} for name, kind in METRIC_FIELDS]
    fields += [
        {"name": "pane", "type": {"type": "enum", "name": "PaneTiming", "symbols": ["EARLY", "ON_TIME", "LATE"]}},
        {"name": "pane_index", "type": "long"},
    ]
    return {"type": "record", "name": "WindowAggregate", "namespace": "analytics", "fields": fields}


def arrow_schema(dimensions: Sequence[str]) -> pa.Schema:
    kinds = {"long": pa.int64(), "double": pa.float64()}
    fields = [pa.field("window_start", pa.string(), False), pa.field("window_end", pa.string(), False)]
    fields += [pa.field(dim, pa.string(), False) for dim in dimensions]
    fields += [pa.field(name, kinds[kind], False) for name, kind in METRIC_FIELDS]
    fields += [pa.field("pane", pa.string(), False), pa.field("pane_index", pa.int64(), False)]
    return pa.schema(fields)


def _json_lines(records: Sequence[dict[str, Any]]) -> bytes:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    # Only an overflowing sum (and the mean made of it) can be non-finite. JSON has no literal
    # for them and orjson writes null, which a reader cannot tell from a missing value: write
    # the strings Athena, BigQuery and Spark read back as doubles. Nothing else is ever null,
    # so a file without "null" (a dimension may hold the text: then only time is lost) is done.
    if b"null" not in data:
        return data
    return b"".join(orjson.dumps(_finite_or_text(r)) + b"\n" for r in records)


def _finite_or_text(record: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (non_finite_text(value) if isinstance(value, float) and not math.isfinite(value) else value)
        for name, value in record.items()
    }


def non_finite_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def encode(records: Sequence[dict[str, Any]], output_format: str, dimensions: Sequence[str]) -> bytes:
    """Serialize records (already in a deterministic order) to one file's bytes."""
    if output_format == "jsonl":
        return _json_lines(records)
    buffer = io.BytesIO()
    if output_format == "parquet":
        table = pa.Table.from_pylist(list(records), schema=arrow_schema(dimensions))
        # Statistics (min/max/nulls per column chunk) let engines skip row groups; files are sorted
        # by window, so a time filter skips most of a large file's row groups.
        pq.write_table(
            table, buffer, compression="zstd", write_statistics=True, row_group_size=PARQUET_ROW_GROUP_ROWS
        )
    elif output_format == "avro":
        # A fixed sync marker keeps identical inputs byte-identical (idempotent re-runs).
        fastavro.writer(
            buffer,
            fastavro.parse_schema(avro_schema(dimensions)),
            records,
            codec="deflate",
            sync_marker=b"analytics-sync!!",
        )
    else:
        raise ValueError(f"unknown output format {output_format!r}; use jsonl, parquet or avro")
    return buffer.getvalue()
