"""Bounded file source: NDJSON lines or Avro container files, read as RawBatches.

Any filesystem Beam knows works (local, s3://, gs://, azfs://); compression is detected
from the extension (.gz, .bz2, .zst, .deflate, .xz, .lzma) and undone by
io_connectors.decompress; Avro containers are read by io_connectors.avro_files.

Unreadable input never stops the run. A broken or truncated compressed stream, a corrupt
Avro block, bytes after the end of the data, or a line too long to hold becomes a
ReadFailure (a dead letter naming the file and the byte offset); what came before it still
counts, and reading goes on wherever the format allows. Batches are bounded by record count
and by bytes, so memory stays bounded whatever the file holds.
"""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from io_connectors.avro_blocks import AVRO_SYNC_SIZE, MAX_AVRO_BLOCK_BYTES, MAX_AVRO_HEADER_BYTES
from io_connectors.avro_files import AvroFileReader
from io_connectors.decompress import DecompressedReader, StreamBroken
from io_connectors.file_batches import DEFAULT_BATCH, DEFAULT_BATCH_BYTES, Batches, stream_failure
from io_connectors.records import MAX_RECORD_BYTES, RECORD_OVER_LIMIT, RawBatch, ReadFailure

__all__ = [
    "AVRO_SYNC_SIZE",
    "DEFAULT_BATCH",
    "DEFAULT_BATCH_BYTES",
    "MAX_AVRO_BLOCK_BYTES",
    "MAX_AVRO_HEADER_BYTES",
    "DecompressedReader",
    "ReadFiles",
    "StreamBroken",
    "match_files",
    "match_sizes",
    "split_ranges",
]

READ_CHUNK = 8 << 20
# Uncompressed line files are read in ranges of this size, in parallel where workers allow.
RANGE_BYTES = 64 << 20
# A line up to this long reaches the decoder whole (which refuses one over MAX_RECORD_BYTES,
# keeping its payload, like any line inside one read); a longer one is never held whole.
# Batches close at DEFAULT_BATCH_BYTES, so a batch holds only a few such lines.
MAX_CARRIED_BYTES = 8 << 20
# A batch of lines closes at this many bytes (or DEFAULT_BATCH lines, whichever comes first).
BATCH_BYTES = DEFAULT_BATCH_BYTES
# How much of a line too long to hold its dead letter keeps.
PAYLOAD_PREFIX = 1024


def match_files(pattern: str) -> list[str]:
    """Paths matching a glob, sorted; raises FileNotFoundError naming the pattern when none do."""
    return [path for path, _ in match_sizes(pattern)]


def match_sizes(pattern: str) -> list[tuple[str, int]]:
    """(path, size in bytes) of every file matching a glob, sorted by path."""
    try:
        results = FileSystems.match([pattern])
    except Exception as err:  # noqa: BLE001 - Beam raises BeamIOError and plain IOErrors here
        raise FileNotFoundError(f"cannot list {pattern!r}: {err}") from err
    found = sorted((meta.path, meta.size_in_bytes) for result in results for meta in result.metadata_list)
    if not found:
        raise FileNotFoundError(f"no file matches {pattern!r}; check the path or glob.")
    return found


def split_ranges(path: str, size: int, input_format: str, range_bytes: int = RANGE_BYTES) -> list[tuple]:
    """(path, start, end) byte ranges that workers can read in parallel.

    Only uncompressed line files split (a compressed stream or an Avro container must be read
    from its start); a range owns every line that starts inside it."""
    splittable = input_format == "json" and CompressionTypes.detect_compression_type(path) == (
        CompressionTypes.UNCOMPRESSED
    )
    if not splittable or size <= range_bytes:
        return [(path, 0, None)]
    return [(path, start, min(start + range_bytes, size)) for start in range(0, size, range_bytes)]


class _ReadFile(beam.DoFn):
    def __init__(self, input_format: str, batch_size: int) -> None:
        self._format = input_format
        self._batch = batch_size

    def process(self, file_range: tuple) -> Iterator[RawBatch]:
        path, start, end = file_range
        compression = CompressionTypes.detect_compression_type(path)
        # Raw bytes, decompressed here: see the module docstring.
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            handle = raw if compression == CompressionTypes.UNCOMPRESSED else DecompressedReader(raw, compression)
            if self._format == "avro":
                yield from self._avro(path, handle)
            else:
                yield from self._lines(path, handle, start, end)

    def _lines(self, path: str, handle: Any, start: int = 0, end: int | None = None) -> Iterator[RawBatch]:
        # Large reads split in C are several times faster than iterating the file line by line.
        # Positions are 1-based line numbers (as editors show them) from the start of the file,
        # or from the range's first byte for a range that starts later ("path@byte:line").
        batches = Batches(path if start == 0 else f"{path}@{start}", self._batch, first=1, max_bytes=BATCH_BYTES)
        offset = 0  # absolute (decompressed) offset of tail[0]: the line being assembled
        tail = b""
        if start:
            handle.seek(start - 1)
            skipped = self._skip_to_line_start(handle)
            if skipped is None:
                return
            offset = start - 1 + skipped
            if end is not None and offset >= end:
                return  # the range lies inside one line, which the range where it starts owns
        carried = b""  # read past an over-long line, still to split
        while True:
            if carried:
                chunk, carried = carried, b""
            else:
                try:
                    chunk = handle.read(READ_CHUNK)
                except StreamBroken as broken:
                    yield from batches.flush()
                    failure = stream_failure(path, broken, batches.records, offset + len(tail), tail)
                    yield from batches.fail(failure, 0, f"compressed-byte:{broken.start}")
                    return
            if not chunk:
                if tail:
                    yield from batches.add(self._split(tail), len(tail))
                break
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                tail = data
                if len(tail) > max(MAX_CARRIED_BYTES, MAX_RECORD_BYTES):
                    # Never held whole: a file without newlines would otherwise be read into memory.
                    outcome = yield from self._skip_long_line(path, handle, batches, offset, tail)
                    if outcome is None:
                        return
                    offset, carried = outcome
                    tail = b""
                    if end is not None and offset >= end:
                        break
                continue
            if end is not None and offset + cut + 1 >= end:
                # The line holding byte end-1 is ours; the next one starts the next range.
                last = data[: data.find(b"\n", max(0, end - 1 - offset))]
                yield from batches.add(self._split(last), len(last))
                tail = b""
                break
            yield from batches.add(self._split(data[:cut]), cut)
            tail = data[cut + 1 :]
            offset += cut + 1
        yield from batches.flush()

    def _skip_long_line(
        self, path: str, handle: Any, batches: Batches, offset: int, head: bytes
    ) -> Iterator[RawBatch]:
        """Reads past a line too long to hold and dead-letters it; returns (offset of the
        next line, bytes read after it), or None when the stream broke on the way."""
        length = len(head)
        after = None
        broken = None
        while after is None:
            try:
                chunk = handle.read(READ_CHUNK)
            except StreamBroken as err:
                broken = err
                break
            if not chunk:
                break
            newline = chunk.find(b"\n")
            if newline < 0:
                length += len(chunk)
            else:
                length += newline
                after = chunk[newline + 1 :]
        at = "decompressed byte" if isinstance(handle, DecompressedReader) else "byte"
        size = f"{length} bytes" if broken is None else f"at least {length} bytes"
        reason = (
            f"{path}: the record at {at} {offset} is {size}, over the {MAX_RECORD_BYTES}-byte limit and too long "
            f"to hold; skipped to the next line (the payload holds its first {PAYLOAD_PREFIX} bytes): "
            "split the record, or fix the producer that wrote it"
        )
        failure = ReadFailure(reason, head[:PAYLOAD_PREFIX], RECORD_OVER_LIMIT, 1, offset, False)
        yield from batches.fail(failure, 1)
        if broken is not None:
            failure = stream_failure(path, broken, batches.records, offset + length, b"")
            yield from batches.fail(failure, 0, f"compressed-byte:{broken.start}")
            return None
        if after is None:
            return offset + length, b""  # the file ended inside the line
        return offset + length + 1, after

    @staticmethod
    def _split(data: bytes) -> list[bytes]:
        lines = data.split(b"\n")
        if b"\r" in data:
            lines = [line.rstrip(b"\r") for line in lines]
        return lines

    @staticmethod
    def _skip_to_line_start(handle: Any) -> int | None:
        """Reads past the next newline; returns how many bytes that took, None at end of file."""
        skipped = 0
        while True:
            chunk = handle.read(64 << 10)
            if not chunk:
                return None
            newline = chunk.find(b"\n")
            if newline >= 0:
                handle.seek(handle.tell() - len(chunk) + newline + 1)
                return skipped + newline + 1
            skipped += len(chunk)

    def _avro(self, path: str, handle: Any) -> Iterator[RawBatch]:
        yield from AvroFileReader(path, handle, self._batch).batches()


class ReadFiles(beam.PTransform):
    """Reads every file matching `pattern` as RawBatches of lines (json) or records (avro)."""

    def __init__(self, pattern: str, input_format: str = "json", batch_size: int = DEFAULT_BATCH) -> None:
        super().__init__()
        self._pattern = pattern
        self._format = input_format
        self._batch = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        # Matched at construction so a missing file fails before the pipeline starts.
        ranges = [r for path, size in match_sizes(self._pattern) for r in split_ranges(path, size, self._format)]
        return (
            pbegin
            | "Ranges" >> beam.Create(ranges)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadBatches" >> beam.ParDo(_ReadFile(self._format, self._batch))
        )
