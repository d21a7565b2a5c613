"""Streaming decompression of raw compressed files, with truncation and corruption found exactly.

Beam's CompressedFile ends silently at a truncated stream and has no bound on the output of
one read; DecompressedReader reads raw compressed bytes and decompresses them here, a bounded
amount per call, raising StreamBroken (with the compressed byte where it was found) where the
stream cannot be read on.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Any

from apache_beam.io.filesystem import CompressionTypes

from io_connectors.records import TRUNCATED_FILE, UNREADABLE_TAIL

# Decompressed bytes returned by one read() unless asked otherwise.
READ_CHUNK = 8 << 20
# Compressed bytes handed to a decompressor at a time.
RAW_PIECE = 1 << 20
# One zstd input byte can stand for ~32 KiB of output and its decompressor takes no output
# bound, so it is fed small pieces: at most ~64 MiB comes out of one call.
ZSTD_PIECE = 2 << 10

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


class _Member:
    """What every member reader shares: its decompressor `_d` and the input it left over."""

    _d: Any
    rest: bytes = b""

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return not self.rest


class _ZlibMember(_Member):
    """One gzip member or zlib stream; on an error, replays the input byte by byte from a copy
    of the decompressor taken before the call to find the exact bad byte."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._saved = self._d.copy()
        self.rest = b""

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


class _BufferingMember(_Member):
    """One bzip2 or xz/lzma stream: these decompressors buffer input and output themselves."""

    def __init__(self, decompressor: Any) -> None:
        self._d = decompressor
        self.rest = b""

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


class _ZstdMember(_Member):
    """One zstd frame, fed in small pieces to bound each call's output."""

    def __init__(self) -> None:
        # The window bound Beam uses: large enough for any sane writer, refuses absurd ones.
        self._d = zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()
        self.rest = b""
        self.failed_piece = (0, 0)

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
