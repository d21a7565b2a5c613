"""Bounded file source: NDJSON lines or Avro container files, read as RawBatches.

Any filesystem Beam knows works (local, s3://, gs://, azfs://); compression is detected
from the extension (.gz, .bz2, .zst, .deflate, .xz, .lzma). Compressed files are opened as
raw bytes and decompressed here: Beam's CompressedFile ends silently at a truncated stream
and has no bound on the output of one read.

Unreadable input never stops the run. A broken or truncated compressed stream, a corrupt
Avro block, bytes after the end of the data, or a line too long to hold becomes a
ReadFailure (a dead letter naming the file and the byte offset); what came before it still
counts, and reading goes on wherever the format allows.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from typing import Any, Callable, Iterator

import apache_beam as beam
import fastavro
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from io_connectors.records import (
    RECORD_OVER_LIMIT,
    TRUNCATED_FILE,
    UNREADABLE_BLOCK,
    UNREADABLE_TAIL,
    RawBatch,
    ReadFailure,
)
from transforms.decode import AVRO_CONTAINER_MAGIC, MAX_RECORD_BYTES

DEFAULT_BATCH = 50_000
READ_CHUNK = 8 << 20
# Uncompressed line files are read in ranges of this size, in parallel where workers allow.
RANGE_BYTES = 64 << 20
# Compressed bytes handed to a decompressor at a time.
RAW_PIECE = 1 << 20
# One zstd input byte can stand for ~32 KiB of output and its decompressor takes no output
# bound, so it is fed small pieces: at most ~64 MiB comes out of one call.
ZSTD_PIECE = 2 << 10
# Java's DataFileWriter allows sync intervals up to 2^30 bytes; a block header claiming more is
# taken as corruption rather than read into memory.
MAX_AVRO_BLOCK_BYTES = 1 << 30
MAX_AVRO_HEADER_BYTES = 64 << 20
# Consecutive Avro blocks are decoded together (one header parse) up to this many bytes.
AVRO_RUN_BYTES = 32 << 20
AVRO_SYNC_SIZE = 16
# A line up to this long reaches the decoder whole (which refuses one over MAX_RECORD_BYTES,
# keeping its payload, like any line inside one read); a longer one is never held whole.
MAX_CARRIED_BYTES = 8 << 20
# How much of a line too long to hold its dead letter keeps.
PAYLOAD_PREFIX = 1024

_CODEC_NAMES = {
    CompressionTypes.GZIP: "gzip",
    CompressionTypes.BZIP2: "bzip2",
    CompressionTypes.ZSTD: "zstd",
    CompressionTypes.DEFLATE: "zlib (.deflate)",
    CompressionTypes.LZMA: "xz/lzma",
}
_MAGIC = {
    CompressionTypes.GZIP: b"\x1f\x8b",
    CompressionTypes.BZIP2: b"BZh",
    CompressionTypes.ZSTD: b"\x28\xb5\x2f\xfd",
    CompressionTypes.LZMA: b"",  # .lzma ("alone") streams have no magic bytes
    CompressionTypes.DEFLATE: b"",
}
# What decompressors raise on bad data: zlib.error, OSError (bz2), LZMAError, ZstdError,
# EOFError (data after a finished stream).
try:
    import zstandard

    _ZSTD_ERRORS: tuple[type[Exception], ...] = (zstandard.ZstdError,)
except ImportError:  # pragma: no cover - zstandard comes with apache-beam
    zstandard = None
    _ZSTD_ERRORS = ()
_DECOMPRESS_ERRORS = (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError, *_ZSTD_ERRORS)


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


class StreamBroken(Exception):
    """A compressed stream could not be read on: corrupt, truncated, or not that format at all.

    `start`..`end` are the compressed bytes where it was found (equal when the exact byte is
    known); `what` says what happened, `advice` what to do."""

    def __init__(self, kind: str, start: int, end: int, what: str, advice: str) -> None:
        super().__init__(what)
        self.kind = kind
        self.start = start
        self.end = end
        self.what = what
        self.advice = advice

    def where(self) -> str:
        if self.end <= self.start + 1:
            return f"at compressed byte {self.start}"
        return f"detected between compressed bytes {self.start} and {self.end}"


class _ZlibMember:
    """One gzip member or zlib stream; on an error, replays the input byte by byte from a copy
    of the decompressor taken before the call to find the exact bad byte."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._saved = self._d.copy()
        self.rest = b""

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return not self.rest

    def feed(self, data: bytes, limit: int) -> bytes:
        self._saved = self._d.copy()
        out = self._d.decompress(data, limit)
        self.rest = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
        return out

    def locate(self, data: bytes) -> int | None:
        probe = self._saved
        for index in range(len(data)):
            try:
                probe.decompress(data[index : index + 1])
            except zlib.error:
                return index
        return None

    def flush(self) -> bytes:
        try:
            return self._d.flush()
        except zlib.error:
            return b""


class _BufferingMember:
    """One bzip2 or xz/lzma stream: these decompressors buffer input and output themselves."""

    def __init__(self, decompressor: Any) -> None:
        self._d = decompressor
        self.rest = b""

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return self._d.needs_input

    def feed(self, data: bytes, limit: int) -> bytes:
        out = self._d.decompress(data, limit)
        self.rest = self._d.unused_data if self._d.eof else b""
        return out

    def locate(self, data: bytes) -> int | None:  # noqa: ARG002 - no way to replay these
        return None

    def flush(self) -> bytes:
        return b""


class _ZstdMember:
    """One zstd frame, fed in small pieces to bound each call's output."""

    def __init__(self) -> None:
        # The window bound Beam uses: large enough for any sane writer, refuses absurd ones.
        self._d = zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()
        self.rest = b""
        self.failed_piece = (0, 0)

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return not self.rest

    def feed(self, data: bytes, limit: int) -> bytes:
        out: list[bytes] = []
        produced = 0
        fed = 0
        while fed < len(data) and produced < limit and not self._d.eof:
            piece = data[fed : fed + ZSTD_PIECE]
            self.failed_piece = (fed, fed + len(piece))
            chunk = self._d.decompress(piece)
            fed += len(piece)
            out.append(chunk)
            produced += len(chunk)
        self.rest = self._d.unused_data + data[fed:] if self._d.eof else data[fed:]
        return b"".join(out)

    def locate(self, data: bytes) -> int | None:  # noqa: ARG002 - the failing piece is known, not the byte
        return None

    def flush(self) -> bytes:
        return b""


def _new_member(compression: str) -> Any:
    if compression == CompressionTypes.GZIP:
        return _ZlibMember(zlib.MAX_WBITS | 16)
    if compression == CompressionTypes.DEFLATE:
        return _ZlibMember(zlib.MAX_WBITS)  # Beam's .deflate: a zlib-wrapped stream
    if compression == CompressionTypes.BZIP2:
        return _BufferingMember(bz2.BZ2Decompressor())
    if compression == CompressionTypes.LZMA:
        return _BufferingMember(lzma.LZMADecompressor())
    if compression == CompressionTypes.ZSTD:
        return _ZstdMember()
    raise ValueError(f"compression {compression!r} is not supported; use gzip, bzip2, zstd, deflate or xz/lzma")


def _magic_matches(compression: str, data: bytes) -> bool | None:
    """True/False, or None while `data` is too short to tell."""
    magic = _MAGIC.get(compression, b"")
    if compression == CompressionTypes.ZSTD and len(data) >= 4 and data[1:4] == b"\x2a\x4d\x18":
        return data[0] & 0xF0 == 0x50  # a skippable frame
    if len(data) < len(magic):
        return None if magic.startswith(data) else False
    return data.startswith(magic)


class DecompressedReader:
    """read(n) over the decompressed content of a raw compressed stream.

    Concatenated members (gzip, bzip2, zstd frames, xz streams) are read one after another;
    NUL padding after a member is ignored. Where the stream cannot be read on, read() raises
    StreamBroken (and keeps raising it); everything decodable before that point is returned
    first. `compressed_pos` is the compressed offset reached, `pos` the decompressed one.
    """

    def __init__(self, raw: Any, compression: str) -> None:
        self._raw = raw
        self._compression = compression
        self.codec = _CODEC_NAMES.get(compression, compression)
        self._input = b""
        self.compressed_pos = 0  # compressed offset of _input[0]
        self.pos = 0
        self._raw_eof = False
        self._member: Any = None
        self._members = 0
        self._failure: StreamBroken | None = None

    def read(self, size: int = READ_CHUNK) -> bytes:
        if self._failure is not None:
            raise self._failure
        try:
            out = self._read(size)
        except StreamBroken as broken:
            self._failure = broken
            raise
        self.pos += len(out)
        return out

    def _more_raw(self) -> bool:
        if self._raw_eof:
            return False
        data = self._raw.read(RAW_PIECE)
        if not data:
            self._raw_eof = True
            return False
        self._input = self._input + data if self._input else data
        return True

    def _read(self, size: int) -> bytes:
        stalled = 0
        while True:
            if self._member is None and not self._start_member():
                return b""
            member = self._member
            if member.needs_input and not self._input and not self._more_raw():
                end = self.compressed_pos
                self._failure = StreamBroken(
                    TRUNCATED_FILE, end, end, f"{self.codec} stream truncated at compressed byte {end}",
                    "re-upload the file",
                )
                tail = member.flush()  # what the stream held up to the cut
                if tail:
                    return tail
                raise self._failure
            data = self._input
            try:
                out = member.feed(data, size)
            except _DECOMPRESS_ERRORS as err:
                raise self._corrupt(member, data, err) from None
            consumed = len(data) - len(member.rest)
            self.compressed_pos += consumed
            self._input = member.rest
            if member.eof:
                self._member = None
            if out:
                return out
            stalled = stalled + 1 if not consumed and not member.eof else 0
            if stalled > 2:
                raise StreamBroken(
                    UNREADABLE_TAIL, self.compressed_pos, self.compressed_pos,
                    f"{self.codec} decompressor stopped making progress at compressed byte {self.compressed_pos}",
                    "re-upload an intact copy of the file",
                )

    def _start_member(self) -> bool:
        while True:
            if not self._input and not self._more_raw():
                return False
            if self._members and not self._input.strip(b"\0"):
                self.compressed_pos += len(self._input)  # padding after the last member
                self._input = b""
                continue
            break
        while (matches := _magic_matches(self._compression, self._input)) is None and self._more_raw():
            pass
        at = self.compressed_pos
        if matches is None:
            raise StreamBroken(
                TRUNCATED_FILE, at, at, f"{self.codec} stream truncated in its header at compressed byte {at}",
                "re-upload the file",
            )
        if not matches:
            if self._members:
                raise StreamBroken(
                    UNREADABLE_TAIL, at, at,
                    f"unreadable bytes after the end of the {self.codec} stream at compressed byte {at}",
                    "remove what follows the compressed stream, or re-upload the file",
                )
            raise StreamBroken(
                UNREADABLE_TAIL, at, at,
                f"not {self.codec} data at compressed byte {at}, though the file name says it is",
                f"rename the file to match its content, or re-upload it {self.codec}-compressed",
            )
        self._member = _new_member(self._compression)
        self._members += 1
        return True

    def _corrupt(self, member: Any, data: bytes, err: Exception) -> StreamBroken:
        index = member.locate(data)
        if index is not None:
            start = end = self.compressed_pos + index
        elif isinstance(member, _ZstdMember):
            start, end = (self.compressed_pos + i for i in member.failed_piece)
        else:
            start, end = self.compressed_pos, self.compressed_pos + len(data)
        broken = StreamBroken(
            UNREADABLE_TAIL, start, end, f"{self.codec} data corrupt ({err})", "re-upload an intact copy of the file"
        )
        broken.what = f"{self.codec} data corrupt {broken.where()} ({err})"
        return broken


class _Batches:
    """Collects records into RawBatches of `size`, numbering them from `first`; a failure is
    emitted in a batch of its own after the records before it."""

    def __init__(self, source: str, size: int, first: int) -> None:
        self.source = source
        self._size = size
        self.first = first  # position of pending[0]
        self.records = 0  # records added so far
        self._pending: list = []

    def add(self, records: list) -> Iterator[RawBatch]:
        self._pending.extend(records)
        self.records += len(records)
        while len(self._pending) >= self._size:
            yield RawBatch(self.source, self._pending[: self._size], first_offset=self.first)
            self.first += self._size
            self._pending = self._pending[self._size :]

    def flush(self) -> Iterator[RawBatch]:
        if self._pending:
            yield RawBatch(self.source, self._pending, first_offset=self.first)
            self.first += len(self._pending)
            self._pending = []

    def fail(self, failure: ReadFailure, skip: int, position: str | None = None) -> Iterator[RawBatch]:
        """Emits the records so far, then `failure` at `position` (default: the next record's
        number); the numbering then moves on by `skip` records."""
        yield from self.flush()
        if position is None:
            yield RawBatch(self.source, [failure], first_offset=self.first)
        else:
            yield RawBatch(self.source, [failure], positions=[position])
        self.first += skip

    def restart(self, source: str, first: int) -> None:
        """Numbers what follows from `first` within `source` (after a gap of unknown size)."""
        self.source = source
        self.first = first


def _stream_failure(path: str, broken: StreamBroken, records: int, decompressed: int, partial: bytes) -> ReadFailure:
    cut = f"; the payload holds the {len(partial)} bytes of the cut-off record" if partial else ""
    before = f"{records} records were read before it, up to decompressed byte {decompressed}"
    reason = (
        f"{path}: {broken.what}; {before if decompressed else 'nothing was read before it'}{cut}; "
        f"the rest of the file is unreadable: {broken.advice}"
    )
    return ReadFailure(reason, partial, broken.kind, None, broken.start, True)


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
        batches = _Batches(path if start == 0 else f"{path}@{start}", self._batch, first=1)
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
                    failure = _stream_failure(path, broken, batches.records, offset + len(tail), tail)
                    yield from batches.fail(failure, 0, f"compressed-byte:{broken.start}")
                    return
            if not chunk:
                if tail:
                    yield from batches.add(self._split(tail))
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
                yield from batches.add(self._split(data[: data.find(b"\n", max(0, end - 1 - offset))]))
                tail = b""
                break
            yield from batches.add(self._split(data[:cut]))
            tail = data[cut + 1 :]
            offset += cut + 1
        yield from batches.flush()

    def _skip_long_line(
        self, path: str, handle: Any, batches: _Batches, offset: int, head: bytes
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
            failure = _stream_failure(path, broken, batches.records, offset + length, b"")
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
        compressed = isinstance(handle, DecompressedReader)
        at = "decompressed byte" if compressed else "byte"
        label = "decompressed-byte" if compressed else "byte"
        cursor = _Cursor(handle.read)
        batches = _Batches(path, self._batch, first=0)
        header = b""
        run: list[tuple[int, int, bytes]] = []  # (offset, record count, raw bytes) of framed blocks
        run_records = run_bytes = 0
        try:
            header, sync = _read_avro_header(cursor)
            while True:
                try:
                    block = _next_avro_block(cursor, sync)
                except _AvroFramingError as bad:
                    yield from self._decode_avro_run(path, header, run, batches, at, label)
                    run, run_records, run_bytes = [], 0, 0
                    resumed = yield from self._resync(path, cursor, sync, bad, batches, at, label)
                    if not resumed:
                        break
                    continue
                if block is None:
                    break
                run.append(block)
                run_records += block[1]
                run_bytes += len(block[2])
                if run_records >= self._batch or run_bytes >= AVRO_RUN_BYTES:
                    yield from self._decode_avro_run(path, header, run, batches, at, label)
                    run, run_records, run_bytes = [], 0, 0
            yield from self._decode_avro_run(path, header, run, batches, at, label)
        except _AvroFramingError as bad:  # the header itself
            kind = TRUNCATED_FILE if bad.at_end else UNREADABLE_TAIL
            reason = f"{path}: not a readable Avro container file ({bad}); nothing in it could be read: "
            reason += "re-upload the file" if bad.at_end else "check that it is an Avro container file (.avro)"
            yield from batches.fail(ReadFailure(reason, b"", kind, None, bad.offset, False), 0, f"{label}:{bad.offset}")
        except StreamBroken as broken:
            # Whatever was framed before the compressed stream broke is decoded first.
            yield from self._decode_avro_run(path, header, run, batches, at, label)
            failure = _stream_failure(path, broken, batches.records, handle.pos, b"")
            yield from batches.fail(failure, 0, f"compressed-byte:{broken.start}")
            return
        yield from batches.flush()

    def _decode_avro_run(
        self, path: str, header: bytes, run: list, batches: _Batches, at: str, label: str
    ) -> Iterator[RawBatch]:
        if not run:
            return
        records = _decode_avro(header, b"".join(raw for _, _, raw in run))
        if not isinstance(records, Exception):
            yield from batches.add(records)
            return
        # Some block is bad: decode one block at a time to keep every good one.
        for offset, count, raw in run:
            records = _decode_avro(header, raw)
            if not isinstance(records, Exception):
                yield from batches.add(records)
                continue
            reason = (
                f"{path}: Avro block at {at} {offset} is unreadable ({_describe(records)}); "
                f"its {count} records are lost and reading went on with the next block: "
                "re-upload an intact copy of the file to recover them"
            )
            failure = ReadFailure(reason, b"", UNREADABLE_BLOCK, count, offset, False)
            yield from batches.fail(failure, count, f"{label}:{offset}")

    def _resync(
        self, path: str, cursor: _Cursor, sync: bytes, bad: _AvroFramingError, batches: _Batches, at: str, label: str
    ) -> Iterator[RawBatch]:
        """Skips to the block after the next sync marker; returns whether reading can go on."""
        cursor.unread(bad.consumed)
        marker = cursor.find(sync)
        if marker is None and bad.at_end and bad.count is not None:
            reason = (
                f"{path}: Avro file truncated at {at} {cursor.pos}: the block at {at} {bad.offset} "
                f"({bad.count} records) ends past the end of the file; the rest of the file is unreadable: "
                "re-upload the file"
            )
            failure = ReadFailure(reason, b"", TRUNCATED_FILE, bad.count, bad.offset, False)
        elif marker is None:
            kind = TRUNCATED_FILE if bad.at_end else UNREADABLE_TAIL
            reason = (
                f"{path}: unreadable Avro data from {at} {bad.offset} to the end of the file at {at} {cursor.pos} "
                f"({bad}); how many records it held is unknown: re-upload an intact copy of the file"
            )
            failure = ReadFailure(reason, b"", kind, None, bad.offset, False)
        else:
            resume = marker + AVRO_SYNC_SIZE
            reason = (
                f"{path}: Avro data corrupt at {at} {bad.offset} ({bad}); skipped {resume - bad.offset} bytes to "
                f"the next block at {at} {resume}, losing an unknown number of records; records after it are "
                f"numbered from there ({path}@{resume}:N): re-upload an intact copy of the file to recover them"
            )
            failure = ReadFailure(reason, b"", UNREADABLE_BLOCK, None, bad.offset, False)
        yield from batches.fail(failure, 0, f"{label}:{bad.offset}")
        if marker is None:
            return False
        batches.restart(f"{path}@{marker + AVRO_SYNC_SIZE}", 0)
        return True


class _AvroFramingError(ValueError):
    """An Avro header or block whose framing is wrong. `consumed` holds the bytes read from
    `offset` on (to scan them again for a sync marker); `at_end` says the data ran out."""

    def __init__(self, message: str, offset: int, consumed: bytes, at_end: bool, count: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.consumed = consumed
        self.at_end = at_end
        self.count = count


class _Cursor:
    """Sequential reads over read(n) with push-back and marker search; `pos` is the offset of
    the next byte."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buf = b""
        self._at = 0
        self.pos = 0

    def take(self, size: int) -> bytes:
        """`size` bytes, fewer only at the end of the data."""
        if self._at + size <= len(self._buf):
            out = self._buf[self._at : self._at + size]
            self._at += size
            self.pos += size
            return out
        parts = [self._buf[self._at :]]
        have = len(parts[0])
        self._buf, self._at = b"", 0
        while have < size:
            chunk = self._read(READ_CHUNK)
            if not chunk:
                break
            need = size - have
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._at = chunk, need
                have = size
            else:
                parts.append(chunk)
                have += len(chunk)
        out = b"".join(parts)
        self.pos += len(out)
        return out

    def unread(self, data: bytes) -> None:
        self._buf = data + self._buf[self._at :]
        self._at = 0
        self.pos -= len(data)

    def find(self, marker: bytes) -> int | None:
        """Moves past the next occurrence of `marker` and returns its offset; at the end of the
        data without one, returns None (everything consumed)."""
        keep = len(marker) - 1  # a marker may straddle two reads
        while True:
            index = self._buf.find(marker, self._at)
            if index >= 0:
                self.pos += index + len(marker) - self._at
                self._at = index + len(marker)
                return self.pos - len(marker)
            remain = self._buf[max(self._at, len(self._buf) - keep) :]
            self.pos += len(self._buf) - self._at - len(remain)
            chunk = self._read(READ_CHUNK)
            if not chunk:
                self.pos += len(remain)
                self._buf, self._at = b"", 0
                return None
            self._buf, self._at = remain + chunk, 0


def _read_long(cursor: _Cursor, offset: int, consumed: bytearray) -> int:
    """An Avro zig-zag varint; its bytes are appended to `consumed`."""
    value = shift = 0
    for _ in range(10):
        byte = cursor.take(1)
        if not byte:
            raise _AvroFramingError(f"data ends inside a length at {cursor.pos}", offset, bytes(consumed), True)
        consumed += byte
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return (value >> 1) ^ -(value & 1)
        shift += 7
    raise _AvroFramingError("a length is longer than 10 bytes", offset, bytes(consumed), False)


def _read_avro_header(cursor: _Cursor) -> tuple[bytes, bytes]:
    """(header bytes, sync marker); the writer schema is checked by parsing the header with fastavro."""
    raw = bytearray(cursor.take(len(AVRO_CONTAINER_MAGIC)))
    if bytes(raw) != AVRO_CONTAINER_MAGIC:
        if len(raw) < len(AVRO_CONTAINER_MAGIC) and AVRO_CONTAINER_MAGIC.startswith(bytes(raw)):
            raise _AvroFramingError(f"the file ends after {len(raw)} bytes, inside the header", 0, bytes(raw), True)
        raise _AvroFramingError("it does not start with the Avro magic bytes Obj\\x01", 0, bytes(raw), False)
    while (count := _read_long(cursor, 0, raw)) != 0:
        if count < 0:
            count = -count
            _read_long(cursor, 0, raw)  # the block's byte size, not needed
        for _ in range(2 * count):  # key, value
            size = _read_long(cursor, 0, raw)
            if size < 0 or len(raw) + size > MAX_AVRO_HEADER_BYTES:
                raise _AvroFramingError(f"header metadata entry of {size} bytes", 0, bytes(raw), False)
            data = cursor.take(size)
            raw += data
            if len(data) < size:
                raise _AvroFramingError("the file ends inside the header", 0, bytes(raw), True)
    sync = cursor.take(AVRO_SYNC_SIZE)
    raw += sync
    if len(sync) < AVRO_SYNC_SIZE:
        raise _AvroFramingError("the file ends inside the header", 0, bytes(raw), True)
    try:
        fastavro.reader(io.BytesIO(bytes(raw)))
    except Exception as err:  # noqa: BLE001 - fastavro raises many types on a bad schema
        raise _AvroFramingError(f"bad header: {type(err).__name__}: {err}", 0, bytes(raw), False) from None
    return bytes(raw), sync


def _next_avro_block(cursor: _Cursor, sync: bytes) -> tuple[int, int, bytes] | None:
    """The next block framed and its sync marker checked, as (offset, record count, raw bytes);
    None at the end of the file. Records are decoded later, many blocks at once."""
    offset = cursor.pos
    consumed = bytearray(cursor.take(1))
    if not consumed:
        return None
    cursor.unread(bytes(consumed))
    consumed.clear()
    count = _read_long(cursor, offset, consumed)
    size = _read_long(cursor, offset, consumed)
    if count < 0 or size < 0 or size > MAX_AVRO_BLOCK_BYTES:
        raise _AvroFramingError(f"block header claims {count} records in {size} bytes", offset, bytes(consumed), False)
    data = cursor.take(size)
    consumed += data
    if len(data) < size:
        raise _AvroFramingError(
            f"block of {size} bytes ends past the end of the file", offset, bytes(consumed), True, count
        )
    marker = cursor.take(AVRO_SYNC_SIZE)
    consumed += marker
    if len(marker) < AVRO_SYNC_SIZE:
        raise _AvroFramingError("the file ends inside a sync marker", offset, bytes(consumed), True, count)
    if marker != sync:
        raise _AvroFramingError("sync marker missing after the block", offset, bytes(consumed), False, count)
    return offset, count, bytes(consumed)


def _describe(err: Exception) -> str:
    name = "zlib" if isinstance(err, zlib.error) else type(err).__name__
    return f"{name}: {err}"


def _decode_avro(header: bytes, blocks: bytes) -> list | Exception:
    """The records of consecutive framed blocks, or the exception decoding raised."""
    try:
        return list(fastavro.reader(io.BytesIO(header + blocks)))
    except Exception as err:  # noqa: BLE001 - corrupt blocks make fastavro raise many types
        return err


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
