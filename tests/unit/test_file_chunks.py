"""Chunks of file bytes (transforms/file_chunks.py): a file made of chunks is the file its records
make, whatever order the chunks and records arrive in, in every format."""

from __future__ import annotations

import io
import math
import random

import fastavro
import orjson
import pyarrow.parquet as pq
import pytest

from transforms.file_chunks import ORDER, chunks_of, file_bytes, partition_of
from transforms.formats import encode

DIMS = ("region", "key")
FORMATS = ("jsonl", "parquet", "avro")


def record(minute: int, region: str, key: str, pane_index: int = 0, total: float = 3.0) -> dict:
    start, end = f"2026-01-01T23:{minute:02d}:00Z", f"2026-01-01T23:{minute + 1:02d}:00Z"
    return {
        "window_start": start, "window_end": end, "region": region, "key": key, "count": 2, "sum": total,
        "min": 1.0, "max": 2.0, "mean": total / 2, "p50": 1.0, "p95": 2.0, "p99": 2.0, "distinct_ids": 2,
        "pane": ("EARLY", "ON_TIME", "LATE")[pane_index], "pane_index": pane_index,
    }  # fmt: skip


def records() -> list[dict]:
    return [
        record(minute, region, key, pane)
        for minute in (5, 1, 3)
        for region in ("eu", "us/east")
        for key in ("k2", "k1", "k3")
        for pane in (1, 0)
    ]


def read(data: bytes, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [orjson.loads(line) for line in data.splitlines()]
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    return list(fastavro.reader(io.BytesIO(data)))


def files(chunks: list, fmt: str) -> dict[str, bytes]:
    by_partition: dict[str, list] = {}
    for chunk in chunks:
        by_partition.setdefault(chunk[0], []).append(chunk)
    return {partition: file_bytes(sorted(parts, key=ORDER), fmt, DIMS) for partition, parts in by_partition.items()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_is_the_same_bytes_whatever_order_records_and_chunks_arrive_in(fmt):
    rng = random.Random(7)
    first = files(chunks_of(records(), fmt, DIMS), fmt)
    for _ in range(5):
        shuffled = records()
        rng.shuffle(shuffled)
        # Window by window, as window shards arrive, then the chunks shuffled as a grouping gives them.
        chunks = [chunk for minute in (3, 5, 1) for chunk in chunks_of(
            [r for r in shuffled if r["window_start"].endswith(f"{minute:02d}:00Z")], fmt, DIMS)]
        rng.shuffle(chunks)
        assert files(chunks, fmt) == first


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_holds_its_partition_rows_by_window_then_pane_then_dimensions(fmt):
    made = files(chunks_of(records(), fmt, DIMS), fmt)
    assert sorted(made) == ["dt=2026-01-01/hour=23/region=eu", "dt=2026-01-01/hour=23/region=us%2Feast"]
    for partition, data in made.items():
        rows = read(data, fmt)
        assert {partition_of(row, DIMS) for row in rows} == {partition}
        order = [(r["window_start"], r["pane_index"], r["key"]) for r in rows]
        assert order == sorted(order) and len(rows) == 3 * 3 * 2


def test_jsonl_chunks_join_into_exactly_what_the_records_encode_to():
    rows = [r for r in records() if r["region"] == "eu"]
    rows.sort(key=lambda r: (r["window_start"], r["window_end"], r["pane_index"], r["key"]))
    [data] = files(chunks_of(rows[::-1], "jsonl", DIMS), "jsonl").values()
    assert data == encode(rows, "jsonl", DIMS)


def test_a_non_finite_sum_is_written_as_text_in_its_own_chunk_only():
    rows = [record(1, "eu", "k1"), record(2, "eu", "k1", total=math.inf)]
    [data] = files(chunks_of(rows, "jsonl", DIMS), "jsonl").values()
    first, second = data.splitlines()
    assert orjson.loads(first)["sum"] == 3.0 and orjson.loads(second)["sum"] == "Infinity"


def test_chunks_count_their_rows_and_name_their_window_and_pane():
    chunks = chunks_of(records(), "jsonl", DIMS)
    assert len(chunks) == 3 * 2 * 2  # windows x regions x panes
    assert sum(chunk[2] for chunk in chunks) == len(records())
    assert {chunk[1][:3] for chunk in chunks} == {
        (f"2026-01-01T23:{m:02d}:00Z", f"2026-01-01T23:{m + 1:02d}:00Z", p) for m in (1, 3, 5) for p in (0, 1)
    }
