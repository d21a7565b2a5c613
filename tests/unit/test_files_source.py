"""The file source splits lines exactly like a line-by-line read, whatever the chunk size, and turns
unreadable input (broken or truncated compression, corrupt Avro blocks, over-long lines) into
dead letters naming the file and the byte offset while reading on."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tracemalloc
import zlib

import fastavro
import orjson
import pytest
import zstandard

import io_connectors.avro_blocks as avro_blocks
import io_connectors.avro_files as avro_files
import io_connectors.avro_safety as avro_safety
import io_connectors.files as files
from io_connectors.records import (
    RECORD_OVER_LIMIT,
    TRUNCATED_FILE,
    UNREADABLE_BLOCK,
    UNREADABLE_TAIL,
    ReadFailure,
)


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
@pytest.mark.parametrize(
    "data",
    [b"a\nbb\r\n\nccc\ndddd\neeeee\nf", b"x\ny\n", b"", b"\n\n", b"only-one-line", b"crlf\r\nend\r\n"],
)
def test_lines_and_positions_match_a_line_by_line_read(monkeypatch, chunk, data):
    monkeypatch.setattr(files, "READ_CHUNK", chunk)
    batches = list(files._ReadFile("json", 2)._lines("p", io.BytesIO(data)))
    expected = [line.rstrip(b"\r\n") for line in io.BytesIO(data)]
    assert [r for b in batches for r in b.records] == expected
    assert all(len(b.records) <= 2 for b in batches)
    offsets = [b.first_offset for b in batches]
    assert offsets == [1 + 2 * i for i in range(len(batches))]


@pytest.mark.parametrize("seed", range(40))
def test_byte_ranges_partition_the_lines_exactly(monkeypatch, tmp_path, seed):
    """Reading a file as many byte ranges yields every line once, in order, wherever the cuts fall."""
    import random

    rng = random.Random(seed)
    lines = [b"x" * rng.randrange(0, 12) for _ in range(rng.randrange(0, 60))]
    data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 and lines else b"")
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    monkeypatch.setattr(files, "READ_CHUNK", rng.randrange(1, 20))
    ranges = files.split_ranges(str(path), len(data), "json", range_bytes=rng.randrange(1, 40))
    reader = files._ReadFile("json", 7)
    got = [r for rng_ in ranges for b in reader.process(rng_) for r in b.records]
    assert got == [line.rstrip(b"\n") for line in io.BytesIO(data)]
    assert [r[1] for r in ranges] == sorted({r[1] for r in ranges})


# --- Unreadable input: dead letters naming the file and the byte offset, never a stopped run ---

LINES = [orjson.dumps({"i": i, "pad": "p" * (i % 17)}) for i in range(300)]
BODY = b"\n".join(LINES) + b"\n"
COMPRESS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "zst": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
    "xz": lzma.compress,
}


def decodable_prefix(ext: str, data: bytes) -> bytes:
    """What the codec's own incremental decompressor yields from (possibly cut) data."""
    if ext == "gz":
        d = zlib.decompressobj(31)
        return d.decompress(data) + d.flush()
    if ext == "zst":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return (bz2.BZ2Decompressor() if ext == "bz2" else lzma.LZMADecompressor()).decompress(data)


def read(path, fmt="json", batch=1000):
    """(records, [(position, failure)]) from reading a whole file; failures come in batches of their own."""
    batches = list(files._ReadFile(fmt, batch).process((str(path), 0, None)))
    failures = [(b.position(0), b.records[0]) for b in batches if isinstance(b.records[0], ReadFailure)]
    assert all(len(b.records) == 1 for b in batches if isinstance(b.records[0], ReadFailure))
    records = [r for b in batches for r in b.records if not isinstance(r, ReadFailure)]
    return records, failures



@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_truncated_compressed_file_keeps_the_lines_before_and_reports_the_cut(tmp_path, ext):
    whole = COMPRESS[ext](BODY * 20)
    cut = whole[: len(whole) // 2]
    path = tmp_path / f"e.jsonl.{ext}"
    path.write_bytes(cut)
    records, failures = read(path)
    prefix = decodable_prefix(ext, cut)
    complete, _, partial = prefix.rpartition(b"\n")
    assert records == (complete.split(b"\n") if complete else [])
    [(position, failure)] = failures
    assert position == f"{path}@compressed-byte:{len(cut)}"
    assert failure.kind == TRUNCATED_FILE and failure.records_lost is None
    assert failure.byte_offset == len(cut) and failure.compressed_offset
    assert failure.payload == partial
    assert str(path) in failure.reason and f"truncated at compressed byte {len(cut)}" in failure.reason
    assert f"{len(records)} records were read before it" in failure.reason or not records
    assert "re-upload the file" in failure.reason


def test_plain_text_named_gz_is_one_dead_letter_at_byte_zero(tmp_path):
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(BODY)
    records, failures = read(path)
    assert records == []
    [(position, failure)] = failures
    assert position == f"{path}@compressed-byte:0"
    assert (failure.kind, failure.byte_offset, failure.records_lost) == (UNREADABLE_TAIL, 0, None)
    assert "not gzip data at compressed byte 0" in failure.reason and "rename the file" in failure.reason


def test_corrupt_deflate_in_a_gzip_member_is_located_exactly(tmp_path):
    first = gzip.compress(b"\n".join(LINES[:50]) + b"\n", mtime=0)
    second = bytearray(gzip.compress(b"\n".join(LINES[50:]) + b"\n", mtime=0))
    second[10] = 0xFF  # the first deflate block header: BTYPE 11 is invalid
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(first + bytes(second))
    records, failures = read(path)
    assert records == LINES[:50]
    [(position, failure)] = failures
    assert position == f"{path}@compressed-byte:{len(first) + 10}"
    assert failure.kind == UNREADABLE_TAIL and failure.byte_offset == len(first) + 10
    assert f"gzip data corrupt at compressed byte {len(first) + 10}" in failure.reason
    assert "50 records were read before it" in failure.reason


@pytest.mark.parametrize("ext", ["bz2", "zst"])
def test_corrupt_stream_of_other_codecs_is_a_dead_letter_with_its_byte_range(tmp_path, ext):
    data = bytearray(COMPRESS[ext](BODY))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / f"e.jsonl.{ext}"
    path.write_bytes(bytes(data))
    records, failures = read(path)
    assert BODY.startswith(b"".join(r + b"\n" for r in records))
    [(_, failure)] = failures
    assert failure.kind == UNREADABLE_TAIL and failure.compressed_offset
    assert 0 <= failure.byte_offset <= len(data) // 2
    assert "data corrupt detected between compressed bytes" in failure.reason


def test_concatenated_members_and_padding_read_whole_and_trailing_garbage_is_an_unreadable_tail(tmp_path):
    good = gzip.compress(b"\n".join(LINES[:10]) + b"\n") + gzip.compress(b"\n".join(LINES[10:]))
    path = tmp_path / "ok.jsonl.gz"
    path.write_bytes(good + b"\0" * 512)
    assert read(path) == (LINES, [])
    path = tmp_path / "junk.jsonl.gz"
    path.write_bytes(good + b"junk")
    records, [(position, failure)] = read(path)
    # The last line has no newline: whether it was complete is unknown, so it is the dead letter's payload.
    assert records == LINES[:-1] and failure.payload == LINES[-1]
    assert position == f"{path}@compressed-byte:{len(good)}" and failure.kind == UNREADABLE_TAIL
    assert "unreadable bytes after the end of the gzip stream" in failure.reason


def test_other_codecs_and_empty_files_read_whole(tmp_path):
    for name, data in [
        ("e.jsonl.bz2", bz2.compress(BODY) + bz2.compress(BODY)),
        ("e.jsonl.zst", COMPRESS["zst"](BODY) + COMPRESS["zst"](BODY)),
        ("e.jsonl.xz", lzma.compress(BODY)),
        ("e.jsonl.deflate", zlib.compress(BODY)),
        ("empty.jsonl.gz", b""),
    ]:
        (tmp_path / name).write_bytes(data)
        records, failures = read(tmp_path / name)
        assert failures == [], name
        assert records == ([] if name.startswith("empty") else LINES * (2 if name[-3:] in ("bz2", "zst") else 1))


@pytest.mark.parametrize("chunk", [5, 64, 99])
def test_line_over_the_limit_is_skipped_to_the_next_newline(monkeypatch, chunk):
    """A line too long to carry is dead-lettered by the reader; a shorter one reaches the decoder
    whole, which dead-letters it, payload and all, when it is over MAX_RECORD_BYTES."""
    monkeypatch.setattr(files, "READ_CHUNK", chunk)
    monkeypatch.setattr(files, "MAX_CARRIED_BYTES", 100)
    monkeypatch.setattr(files, "MAX_RECORD_BYTES", 50)
    monkeypatch.setattr(files, "PAYLOAD_PREFIX", 16)
    long = b"L" * 250
    data = b"a\n" + long + b"\r\nb\n" + b"x" * 90 + b"\nc\n" + b"T" * 300
    batches = list(files._ReadFile("json", 1000)._lines("p", io.BytesIO(data)))
    got = [(b.position(i), r) for b in batches for i, r in enumerate(b.records)]
    plain = [(p, r) for p, r in got if not isinstance(r, ReadFailure)]
    over = [(p, r) for p, r in got if isinstance(r, ReadFailure)]
    assert plain == [("p:1", b"a"), ("p:3", b"b"), ("p:4", b"x" * 90), ("p:5", b"c")]
    assert [p for p, _ in over] == ["p:2", "p:6"]
    first, last = over[0][1], over[1][1]
    assert (first.kind, first.byte_offset, first.records_lost) == (RECORD_OVER_LIMIT, 2, 1)
    assert first.payload == long[:16] and "is 251 bytes, over the 50-byte limit" in first.reason
    assert last.byte_offset == data.index(b"T") and "is 300 bytes" in last.reason


def test_a_file_without_newlines_is_never_held_whole(monkeypatch):
    """64 MiB without a newline streams through in memory bounded by the carried-line cap."""
    monkeypatch.setattr(files, "READ_CHUNK", 256 << 10)
    monkeypatch.setattr(files, "MAX_CARRIED_BYTES", 1 << 20)

    class Endless(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 64 << 20
            self.done = False

        def read(self, size=-1):
            if self.left:
                n = min(size, self.left)
                self.left -= n
                return b"x" * n
            if not self.done:
                self.done = True
                return b"\nlast"
            return b""

    tracemalloc.start()
    try:
        batches = list(files._ReadFile("json", 1000)._lines("p", Endless()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    [failure] = batches[0].records
    assert failure.kind == RECORD_OVER_LIMIT and f"is {64 << 20} bytes" in failure.reason
    assert batches[1].records == [b"last"] and batches[1].first_offset == 2


# --- Avro containers ---

AVRO_SCHEMA = fastavro.parse_schema({
    "type": "record", "name": "E",
    "fields": [{"name": "i", "type": "long"}, {"name": "s", "type": "string"}],
})
AVRO_RECORDS = [{"i": i, "s": f"v{i}"} for i in range(3000)]


def avro_file(codec="deflate", sync_interval=2000):
    buf = io.BytesIO()
    fastavro.writer(buf, AVRO_SCHEMA, AVRO_RECORDS, codec=codec, sync_interval=sync_interval)
    data = buf.getvalue()
    return data, list(fastavro.block_reader(io.BytesIO(data)))


def block_data_start(data: bytes, offset: int) -> int:
    """Offset of a block's payload: after its count and size varints."""
    for _ in range(2):
        while data[offset] & 0x80:
            offset += 1
        offset += 1
    return offset


@pytest.mark.parametrize("batch", [100, 700, 50_000])
def test_corrupt_avro_deflate_block_loses_that_block_only(tmp_path, batch):
    data, blocks = avro_file()
    assert len(blocks) > 5
    bad = blocks[3]
    corrupt = bytearray(data)
    corrupt[block_data_start(data, bad.offset)] = 0xFF  # BTYPE 11: invalid deflate block
    path = tmp_path / "e.avro"
    path.write_bytes(bytes(corrupt))
    batches = list(files._ReadFile("avro", batch).process((str(path), 0, None)))
    lost = range(sum(b.num_records for b in blocks[:3]), sum(b.num_records for b in blocks[:4]))
    positions = {b.position(i): r for b in batches for i, r in enumerate(b.records)}
    failures = [(p, r) for p, r in positions.items() if isinstance(r, ReadFailure)]
    records = {p: r for p, r in positions.items() if not isinstance(r, ReadFailure)}
    # Every other record, at its true index in the file.
    assert records == {f"{path}:{i}": r for i, r in enumerate(AVRO_RECORDS) if i not in lost}
    [(position, failure)] = failures
    assert position == f"{path}@byte:{bad.offset}"
    assert (failure.kind, failure.records_lost, failure.byte_offset) == (UNREADABLE_BLOCK, len(lost), bad.offset)
    assert not failure.compressed_offset
    assert f"Avro block at byte {bad.offset}" in failure.reason
    assert f"its {len(lost)} records are lost" in failure.reason
    assert all(len(b.records) <= batch for b in batches)


def test_truncated_avro_file_reports_the_cut_block_and_its_records(tmp_path):
    data, blocks = avro_file()
    cut = blocks[4]
    path = tmp_path / "e.avro"
    path.write_bytes(data[: cut.offset + cut.size // 2])
    records, [(position, failure)] = read(path, "avro")
    assert records == AVRO_RECORDS[: sum(b.num_records for b in blocks[:4])]
    assert position == f"{path}@byte:{cut.offset}"
    assert (failure.kind, failure.records_lost) == (TRUNCATED_FILE, cut.num_records)
    assert f"Avro file truncated at byte {cut.offset + cut.size // 2}" in failure.reason


def test_broken_avro_sync_marker_resyncs_at_the_next_block(tmp_path):
    data, blocks = avro_file()
    bad = blocks[2]
    corrupt = bytearray(data)
    corrupt[bad.offset + bad.size - 1] ^= 0xFF  # the last byte of its sync marker
    path = tmp_path / "e.avro"
    path.write_bytes(bytes(corrupt))
    batches = list(files._ReadFile("avro", 50_000).process((str(path), 0, None)))
    resume = blocks[4].offset  # the marker after block 3 is the next intact one
    records = [(b.position(i), r) for b in batches for i, r in enumerate(b.records) if not isinstance(r, ReadFailure)]
    before = sum(b.num_records for b in blocks[:2])
    after = sum(b.num_records for b in blocks[:4])
    assert records == [(f"{path}:{i}", r) for i, r in enumerate(AVRO_RECORDS[:before])] + [
        (f"{path}@{resume}:{i}", r) for i, r in enumerate(AVRO_RECORDS[after:])
    ]
    [failure] = [r for b in batches for r in b.records if isinstance(r, ReadFailure)]
    assert (failure.kind, failure.records_lost, failure.byte_offset) == (UNREADABLE_BLOCK, None, bad.offset)
    assert f"skipped {resume - bad.offset} bytes to the next block at byte {resume}" in failure.reason


def test_garbage_after_avro_blocks_and_non_avro_files(tmp_path):
    data, _ = avro_file()
    path = tmp_path / "junk.avro"
    path.write_bytes(data + b"junk")  # reads as a block header of -59 bytes
    records, [(position, failure)] = read(path, "avro")
    assert records == AVRO_RECORDS
    assert position == f"{path}@byte:{len(data)}" and failure.kind == UNREADABLE_TAIL
    path = tmp_path / "text.avro"
    path.write_bytes(BODY)
    records, [(position, failure)] = read(path, "avro")
    assert records == [] and position == f"{path}@byte:0" and failure.kind == UNREADABLE_TAIL
    assert "does not start with the Avro magic bytes" in failure.reason


@pytest.mark.parametrize("codec", ["null", "deflate", "bzip2", "xz"])
def test_intact_avro_reads_exactly_as_fastavro_does(tmp_path, codec):
    data, _ = avro_file(codec, sync_interval=500)
    path = tmp_path / "e.avro"
    path.write_bytes(data)
    batches = list(files._ReadFile("avro", 1000).process((str(path), 0, None)))
    assert [r for b in batches for r in b.records] == list(fastavro.reader(io.BytesIO(data)))
    assert [(b.first_offset, len(b.records)) for b in batches] == [(0, 1000), (1000, 1000), (2000, 1000)]


def test_avro_inside_a_truncated_gzip_keeps_the_blocks_before_the_cut(tmp_path):
    data, _ = avro_file()
    gz = gzip.compress(data)
    path = tmp_path / "e.avro.gz"
    path.write_bytes(gz[: len(gz) // 2])
    records, [(position, failure)] = read(path, "avro")
    assert records == AVRO_RECORDS[: len(records)] and records
    assert position == f"{path}@compressed-byte:{len(gz) // 2}" and failure.kind == TRUNCATED_FILE


# --- Hostile Avro and oversized batches: bounded memory, dead letters, reading goes on ---

BOMB_FIELDS = [{"name": "event_time", "type": "long"}, {"name": "key", "type": "string"}]


def hostile_container(schema: dict, record: bytes, count: int = 1) -> bytes:
    """A valid header for `schema`, then one hand-made null-codec block of `count` records."""
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), [], sync_marker=b"S" * 16, codec="null")
    return buf.getvalue() + avro_blocks.encode_long(count) + avro_blocks.encode_long(len(record)) + record + b"S" * 16


def bomb(kind: str) -> bytes:
    long, key = avro_blocks.encode_long(1767225600000), avro_blocks.encode_long(1) + b"k"
    if kind == "null array":
        schema = {"type": "record", "name": "E",
                  "fields": [*BOMB_FIELDS, {"name": "pad", "type": {"type": "array", "items": "null"}}]}
        return hostile_container(schema, long + key + avro_blocks.encode_long(4_000_000_000) + b"\0")
    if kind == "record count":
        schema = {"type": "record", "name": "E", "fields": [{"name": "event_time", "type": "null"}]}
        return hostile_container(schema, b"", 100_000_000_000)
    node = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
    schema = {"type": "record", "name": "E", "fields": [*BOMB_FIELDS, {"name": "nest", "type": ["null", node]}]}
    return hostile_container(schema, long + key + b"\2" * 5000 + b"\0")


BOMB_REASONS = {
    "null array": "its Avro writer schema 'E' has an array of null items (field 'pad' of 'E'), which lets a few "
                  "bytes claim billions of items; such files are not read",
    "record count": "its Avro writer schema 'E' encodes a whole record in zero bytes",
    "deep nesting": "its Avro writer schema 'E' is recursive: type 'Node' can hold another 'Node'",
}

# Peak memory from VmHWM: ru_maxrss would carry over the high-water mark of the forked test process.
PEAK_SCRIPT = """
import re, sys
import io_connectors.files as files
batches = list(files._ReadFile("avro", 50_000).process((sys.argv[1], 0, None)))
print(len(batches), [len(b.records) for b in batches])
print(batches[0].records[0].reason)
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024)
"""


@pytest.mark.parametrize("kind", sorted(BOMB_REASONS))
def test_avro_bombs_are_one_dead_letter_in_bounded_memory(tmp_path, kind):
    """Each is a few hundred bytes that fastavro would turn into gigabytes (or a crash)."""
    import subprocess
    import sys

    path = tmp_path / "e.avro"
    path.write_bytes(bomb(kind))
    assert path.stat().st_size < 6000
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], capture_output=True, text=True,
                         timeout=120, cwd=files.__file__.rsplit("/io_connectors/", 1)[0])
    assert out.returncode == 0, out.stderr
    shape, reason, peak_mb = out.stdout.splitlines()
    assert shape == "1 [1]"
    assert reason.startswith(f"{path}: nothing in the file was read: {BOMB_REASONS[kind]}")
    assert int(peak_mb) < 600


def test_block_claiming_more_records_than_bytes_is_unreadable_and_the_next_block_is_read(tmp_path):
    schema = {"type": "record", "name": "E", "fields": BOMB_FIELDS}
    good = [{"event_time": i, "key": "k"} for i in range(3)]
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), good, sync_marker=b"S" * 16, codec="null")
    data = buf.getvalue()
    header_end = data.index(b"S" * 16) + 16
    record = avro_blocks.encode_long(7) + avro_blocks.encode_long(1) + b"k"
    liar = avro_blocks.encode_long(10**9) + avro_blocks.encode_long(len(record)) + record + b"S" * 16
    path = tmp_path / "e.avro"
    path.write_bytes(data[:header_end] + liar + data[header_end:])
    records, [(position, failure)] = read(path, "avro")
    assert records == good
    assert position == f"{path}@byte:{header_end}"
    assert (failure.kind, failure.records_lost) == (UNREADABLE_BLOCK, None)
    claim = f"it claims {10**9} records in {len(record)} bytes, but every record of its schema takes at least 2 bytes"
    assert claim in failure.reason and "how many records it held is unknown" in failure.reason


def test_block_decompressing_past_the_cap_is_unreadable_without_being_held(monkeypatch, tmp_path):
    monkeypatch.setattr(avro_blocks, "MAX_AVRO_BLOCK_BYTES", 1 << 20)
    schema = {"type": "record", "name": "E", "fields": [{"name": "s", "type": "string"}]}
    big = [{"s": "x" * (1 << 20)}]  # one block of just over 1 MiB, about 1 KiB deflated
    small = [{"s": "y"}] * 5
    buf = io.BytesIO()
    writer = fastavro.write.Writer(buf, fastavro.parse_schema(schema), codec="deflate")
    for rows in (small, big, small):
        for row in rows:
            writer.write(row)
        writer.flush()
    data = buf.getvalue()
    blocks = list(fastavro.block_reader(io.BytesIO(data)))
    assert [b.num_records for b in blocks] == [5, 1, 5] and blocks[1].size < 4096
    path = tmp_path / "e.avro"
    path.write_bytes(data)
    records, [(position, failure)] = read(path, "avro")
    assert records == small + small
    assert position == f"{path}@byte:{blocks[1].offset}"
    assert (failure.kind, failure.records_lost) == (UNREADABLE_BLOCK, 1)
    assert f"it decompresses to more than {1 << 20} bytes, over the block limit" in failure.reason


def test_records_of_one_large_block_are_decoded_lazily_into_bounded_batches(monkeypatch, tmp_path):
    monkeypatch.setattr(avro_files, "AVRO_BATCH_MEMORY", 200_000)
    data, [block] = avro_file("null", sync_interval=1 << 30)  # all 3000 records in one block
    path = tmp_path / "e.avro"
    path.write_bytes(data)
    batches = list(files._ReadFile("avro", 1000).process((str(path), 0, None)))
    assert [r for b in batches for r in b.records] == AVRO_RECORDS
    sizes = [len(b.records) for b in batches]
    # Each record is charged its share of the block's bytes times the schema's expansion bound.
    expansion = avro_safety.check_schema(AVRO_SCHEMA).expansion
    per_record = int(len(block.bytes_.getvalue()) * expansion) // len(AVRO_RECORDS)
    assert max(sizes) == -(-200_000 // per_record) < 1000, sizes
    assert [b.first_offset for b in batches] == [sum(sizes[:i]) for i in range(len(sizes))]


def test_line_batches_close_by_bytes_as_well_as_by_count(monkeypatch):
    monkeypatch.setattr(files, "READ_CHUNK", 1500)
    monkeypatch.setattr(files, "BATCH_BYTES", 4000)
    lines = [bytes([65 + i % 26]) * 999 for i in range(40)]
    batches = list(files._ReadFile("json", 50_000)._lines("p", io.BytesIO(b"\n".join(lines) + b"\n")))
    assert [r for b in batches for r in b.records] == lines
    # A batch closes once it holds 4000 bytes; one read (1500 bytes + the line it ends in) can overshoot.
    assert all(sum(map(len, b.records)) < 4000 + 1500 + 1000 for b in batches)
    assert len(batches) >= 40 * 1000 // (4000 + 2500)
