"""Unreadable file data on the CLI: the run finishes (exit 0), everything readable is aggregated
exactly, each unreadable part is one dead letter naming the file and the byte offset, and the
summary counts it."""

from __future__ import annotations

import gzip
import io
import random
import re
import zlib
from pathlib import Path

import fastavro
import orjson
import pytest

from tests.e2e.helpers import (
    AVRO_EVENT,
    BASE_MS,
    check_against_expected,
    expected_aggregates,
    read_aggregates,
    run_cli,
)
from tests.reliability.helpers import run_cli_measuring_peak


def events(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "event_id": f"e{seed}-{i}",
            # Few, large groups: the percentile checks need tens of values per group.
            "event_time": BASE_MS + rng.randrange(0, 120_000),
            "region": "eu-west-1",
            "key": f"k{rng.randrange(2)}",
            "value": round(rng.uniform(0, 1000), 6),
        }
        for i in range(n)
    ]


def ndjson(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def run(source: str, tmp_path: Path, *extra: str) -> tuple[str, list[dict]]:
    """Runs the CLI; returns its summary and the dead letters."""
    result = run_cli("--source", source, "--output", f"file://{tmp_path / 'out'}",
                     "--dead_letter", f"file://{tmp_path / 'dlq'}", *extra)
    assert result.returncode == 0, result.stderr
    dead = [orjson.loads(line) for p in sorted((tmp_path / "dlq").rglob("*.jsonl"))
            for line in p.read_bytes().splitlines()]
    return result.stdout, dead


def summary_value(summary: str, label: str) -> str:
    match = re.search(rf"^{label}\s+(.+?)\s\s", summary, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{summary}"
    return match.group(1).strip()


def avro_with_corrupt_block(records: list[dict], bad_index: int, sync_interval: int) -> tuple[bytes, object]:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(AVRO_EVENT), records, codec="deflate", sync_interval=sync_interval)
    data = bytearray(buf.getvalue())
    blocks = list(fastavro.block_reader(io.BytesIO(bytes(data))))
    bad = blocks[bad_index]
    at = bad.offset
    for _ in range(2):  # past the block's record count and byte size
        while data[at] & 0x80:
            at += 1
        at += 1
    data[at] = 0xFF  # an invalid deflate block type
    return bytes(data), (bad, sum(b.num_records for b in blocks[:bad_index]))


@pytest.mark.parametrize(("total", "sync_interval"), [(300, 1500), (6000, 40_000)])
def test_corrupt_avro_deflate_block_loses_only_its_records(tmp_path, total, sync_interval):
    """Below 512 records per batch the row decoder runs; above, the columnar one."""
    records = events(total, seed=1)
    data, (bad, before) = avro_with_corrupt_block(records, 2, sync_interval)
    lost = bad.num_records
    batches_before, batches_after = before, total - before - lost
    if total > 512:
        assert batches_before >= 512 and batches_after >= 512
    else:
        assert batches_before < 512 and batches_after < 512
    path = tmp_path / "e.avro"
    path.write_bytes(data)
    summary, dead = run(f"file://{path}", tmp_path, "--input_format", "avro")
    kept = records[:before] + records[before + lost:]
    check_against_expected(read_aggregates(tmp_path / "out", "jsonl"), expected_aggregates(kept))
    [letter] = dead
    assert letter["source"] == f"{path}@byte:{bad.offset}"
    assert f"{path}: Avro block at byte {bad.offset} is unreadable" in letter["error"]
    assert f"its {lost} records are lost" in letter["error"]
    assert summary_value(summary, "records read") == f"{len(kept):,}"
    assert summary_value(summary, "dead letters") == "1"
    assert re.search(rf"^unreadable\s+{lost:,}  records in 1 unreadable block$", summary, re.MULTILINE), summary


def test_plain_text_named_gz_beside_a_good_file(tmp_path):
    good, plain = events(2000, seed=2), events(50, seed=3)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(ndjson(good))
    mislabelled = tmp_path / "in" / "b.jsonl.gz"
    mislabelled.write_bytes(ndjson(plain))
    summary, dead = run(f"file://{tmp_path / 'in'}/*", tmp_path)
    check_against_expected(read_aggregates(tmp_path / "out", "jsonl"), expected_aggregates(good))
    [letter] = dead
    assert letter["source"] == f"{mislabelled}@compressed-byte:0"
    assert "not gzip data at compressed byte 0" in letter["error"] and "rename the file" in letter["error"]
    assert summary_value(summary, "records read") == "2,000"
    assert re.search(r"^unreadable\s+unknown  records in 1 unreadable tail$", summary, re.MULTILINE), summary


def test_gzip_cut_in_half_beside_a_good_file(tmp_path):
    good, cut_events = events(1500, seed=4), events(100, seed=5)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(ndjson(good))
    whole = gzip.compress(ndjson(cut_events))
    half = whole[: len(whole) // 2]
    cut = tmp_path / "in" / "e.jsonl.gz"
    cut.write_bytes(half)
    # What a streaming gunzip recovers from the half: its complete lines are readable records.
    inflater = zlib.decompressobj(31)
    prefix = inflater.decompress(half) + inflater.flush()
    readable = prefix.count(b"\n")
    assert 0 < readable < 100
    summary, dead = run(f"file://{tmp_path / 'in'}/*", tmp_path)
    expected = expected_aggregates(good + cut_events[:readable])
    check_against_expected(read_aggregates(tmp_path / "out", "jsonl"), expected)
    [letter] = dead
    assert letter["source"] == f"{cut}@compressed-byte:{len(half)}"
    assert f"{cut}: gzip stream truncated at compressed byte {len(half)}" in letter["error"]
    assert f"{readable} records were read before it" in letter["error"] and "re-upload the file" in letter["error"]
    assert letter["payload"] == prefix[prefix.rindex(b"\n") + 1:].decode()
    assert summary_value(summary, "records read") == f"{1500 + readable:,}"
    assert re.search(r"^unreadable\s+unknown  records in 1 truncated file$", summary, re.MULTILINE), summary


# --- Hostile Avro containers and oversized lines: exit 0, one dead letter each, bounded memory ---



def run_measured(source: str, tmp_path: Path, *extra: str) -> tuple[str, list[dict], int]:
    """Like run(), also returning the CLI's peak resident memory in MB."""
    summary, peak = run_cli_measuring_peak(
        "--source", source, "--output", f"file://{tmp_path / 'out'}", "--dead_letter", f"file://{tmp_path / 'dlq'}",
        *extra, timeout=320,
    )
    dead = [orjson.loads(line) for p in sorted((tmp_path / "dlq").rglob("*.jsonl"))
            for line in p.read_bytes().splitlines()]
    return summary, dead, peak


def avro_bomb(kind: str) -> bytes:
    """A few hundred bytes that fastavro alone turns into gigabytes, or a crash."""
    from io_connectors.avro_blocks import encode_long

    fields = [dict(f) for f in AVRO_EVENT["fields"]]
    if kind == "record count":
        schema, records = {"type": "record", "name": "Event", "fields": [{"name": "event_time", "type": "null"}]}, []
        block = encode_long(100_000_000_000) + encode_long(0)
    else:
        if kind == "null array":
            fields.append({"name": "pad", "type": {"type": "array", "items": "null"}})
            tail = encode_long(4_000_000_000) + b"\0"
        else:
            node = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
            fields.append({"name": "nest", "type": ["null", node]})
            tail = b"\2" * 5000 + b"\0"
        schema, records = {"type": "record", "name": "Event", "fields": fields}, []
        record = (encode_long(4) + b"evil" + encode_long(BASE_MS) + encode_long(9) + b"eu-west-1" + encode_long(2)
                  + b"k0" + bytes(8) + tail)
        block = encode_long(1) + encode_long(len(record)) + record
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), records, sync_marker=b"S" * 16, codec="null")
    return buf.getvalue() + block + b"S" * 16


@pytest.mark.parametrize(("kind", "why"), [
    ("null array", "has an array of null items (field 'pad' of 'Event'), which lets a few bytes claim billions"),
    ("record count", "encodes a whole record in zero bytes"),
    ("deep nesting", "is recursive: type 'Node' can hold another 'Node'"),
])
def test_avro_bomb_beside_a_good_file_is_one_dead_letter(tmp_path, kind, why):
    good = events(1000, seed=6)
    (tmp_path / "in").mkdir()
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(AVRO_EVENT), good)
    (tmp_path / "in" / "a.avro").write_bytes(buf.getvalue())
    bad = tmp_path / "in" / "b.avro"
    bad.write_bytes(avro_bomb(kind))
    assert bad.stat().st_size < 6000
    summary, dead, peak_mb = run_measured(f"file://{tmp_path / 'in'}/*", tmp_path, "--input_format", "avro")
    check_against_expected(read_aggregates(tmp_path / "out", "jsonl"), expected_aggregates(good))
    [letter] = dead
    assert letter["source"] == f"{bad}@byte:0"
    assert letter["error"].startswith(f"{bad}: nothing in the file was read: its Avro writer schema 'Event' {why}")
    assert summary_value(summary, "records read") == "1,000"
    assert peak_mb < 600


def test_gzip_of_long_lines_reads_in_bounded_memory(tmp_path):
    """40 lines of 8 MiB (2.6 MB gzipped) reach the decoder whole, a few per batch: each is a
    dead letter with its full payload, and memory stays far below the 320 MiB they add up to
    times the batch size."""
    line = b"x" * (8 * 1024 * 1024 - 16)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    good = events(500, seed=7)
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(b"".join([compressor.compress(ndjson(good))]
                              + [compressor.compress(line + b"\n") for _ in range(40)] + [compressor.flush()]))
    summary, dead, peak_mb = run_measured(f"file://{path}", tmp_path)
    check_against_expected(read_aggregates(tmp_path / "out", "jsonl"), expected_aggregates(good))
    assert sorted(d["source"] for d in dead) == sorted(f"{path}:{501 + i}" for i in range(40))
    assert {d["error"] for d in dead} == {f"record is {len(line)} bytes, over the 1048576-byte limit"}
    assert all(d["payload"] == line.decode() for d in dead)
    assert summary_value(summary, "records read") == "540"
    assert peak_mb < 1000


def test_refused_avro_schema_option_exits_2_before_any_work(tmp_path):
    schema = tmp_path / "s.avsc"
    schema.write_text(orjson.dumps({"type": "record", "name": "Event", "fields": [
        *AVRO_EVENT["fields"], {"name": "pad", "type": {"type": "array", "items": "null"}}]}).decode())
    source = tmp_path / "e.avro"
    source.write_bytes(b"")
    result = run_cli("--source", f"file://{source}", "--input_format", "avro", "--avro_schema", str(schema),
                     "--output", f"file://{tmp_path / 'out'}")
    assert result.returncode == 2
    assert f"--avro_schema {str(schema)!r} is refused: schema 'Event' has an array of null items" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.jsonl"))
