"""Aggregate rows encoded where they are made, and joined into one file per partition later.

A chunk holds the rows of one partition directory and one (window, pane): for JSON lines their
finished bytes, of which a file is the concatenation; for Parquet and Avro, whose files are
encoded whole, the records themselves. Chunks, not records, travel to the (dt/hour, shard)
grouping that gathers a file (transforms/rolling.py): a chunk of bytes is one object where its
records are thousands, so the records of a whole hour are never alive at once for the garbage
collector to walk, and the grouping moves a few large values instead of many small ones.

Chunk: (partition, order, rows, payload), where `partition` is `dt=.../hour=...[/region=...]`,
`order` = (window_start, window_end, pane_index, dimensions of the first row) places the chunk
in its file, `rows` counts its records and `payload` is the JSON-lines bytes or the record list.
"""

from __future__ import annotations

from collections import defaultdict
from operator import itemgetter
from typing import Any, Iterable, Sequence

from transforms.formats import encode
from transforms.partition_paths import partition_segment

Chunk = tuple[str, tuple, int, Any]
ORDER = itemgetter(1)


def partition_of(record: dict[str, Any], dimensions: Sequence[str]) -> str:
    """`dt=.../hour=...[/region=...]`, every value encoded (one segment each, injective)."""
    start = record["window_start"]
    parts = [partition_segment("dt", start[:10]), partition_segment("hour", start[11:13])]
    if "region" in dimensions:
        parts.append(partition_segment("region", record["region"]))
    return "/".join(parts)


def chunks_of(records: Iterable[dict[str, Any]], output_format: str, dimensions: Sequence[str]) -> list[Chunk]:
    """The chunks of `records`: one per (partition, window, pane), rows sorted by dimensions."""
    dims = tuple(dimensions)
    row_dims = itemgetter(*dims) if len(dims) > 1 else (lambda record: tuple(record[d] for d in dims))
    region = itemgetter("region") if "region" in dims else (lambda _record: None)
    # Grouped by values before the partition is named: a window holds many groups, each encoded once.
    by_values: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_values[(record["window_start"], record["window_end"], record["pane_index"], region(record))].append(record)
    chunks = []
    for (start, end, pane_index, _), rows in by_values.items():
        rows.sort(key=row_dims)
        payload = encode(rows, output_format, dims) if output_format == "jsonl" else rows
        order = (start, end, pane_index, tuple(row_dims(rows[0])))
        chunks.append((partition_of(rows[0], dims), order, len(rows), payload))
    return chunks


def file_bytes(chunks: Sequence[Chunk], output_format: str, dimensions: Sequence[str]) -> bytes:
    """One partition's file from its chunks, which `ORDER` has sorted (window start first, so that
    Parquet row-group statistics on window_start prune well)."""
    if output_format == "jsonl":
        return b"".join(chunk[3] for chunk in chunks)
    return encode([row for chunk in chunks for row in chunk[3]], output_format, dimensions)
