"""The file source splits lines exactly like a line-by-line read, whatever the chunk size."""

from __future__ import annotations

import io

import pytest

import io_connectors.files as files


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
