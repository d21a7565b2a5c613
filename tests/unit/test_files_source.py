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
