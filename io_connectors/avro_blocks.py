"""Avro container framing: the header, blocks framed and bounded before anything is decoded,
decompression with a bound on its output, and lazy record decoding.

fastavro decompresses a block whole, with no bound on its output, and trusts the record count
in the block header. Here every block is framed and its sync marker checked first, decompressed
here with a cap, and its claimed record count checked against its size (every record of an
accepted schema takes at least `SchemaBounds.min_bytes`); only then is it handed to fastavro,
re-framed without compression, one block at a time, and its records are taken as they are
decoded.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import fastavro

from io_connectors.avro_safety import SchemaBounds, UnsafeAvroSchema, check_schema

AVRO_MAGIC = b"Obj\x01"
AVRO_SYNC_SIZE = 16
MAX_AVRO_HEADER_BYTES = 64 << 20
# Avro writers make blocks of 16 KiB to 1 MiB (Java's default sync interval is 64 KB); a block
# that decompresses to more than this is refused rather than held.
MAX_AVRO_BLOCK_BYTES = 64 << 20
# A block's decoded records take at most this much memory (the cap on a block shrinks for
# schemas whose values decode to many small objects per byte, see SchemaBounds.expansion).
AVRO_BLOCK_MEMORY = 512 << 20
# Compressed bytes read at a time while framing.
FRAME_CHUNK = 8 << 20
CODECS = ("null", "deflate", "bzip2", "xz", "zstandard")


class AvroFramingError(ValueError):
    """An Avro header or block whose framing is wrong. `consumed` holds the bytes read from
    `offset` on (to scan them again for a sync marker); `at_end` says the data ran out."""

    def __init__(self, message: str, offset: int, consumed: bytes, at_end: bool, count: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.consumed = consumed
        self.at_end = at_end
        self.count = count


class BlockUnreadable(ValueError):
    """A framed block that is not decoded: its data is corrupt, or it claims more than its
    size allows. `records_lost` is its record count when that count is plausible."""

    def __init__(self, message: str, records_lost: int | None) -> None:
        super().__init__(message)
        self.records_lost = records_lost


class Cursor:
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
            chunk = self._read(FRAME_CHUNK)
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

    def skip(self, size: int) -> int:
        """Moves past `size` bytes without holding them; returns how many there were."""
        skipped = 0
        while skipped < size:
            got = len(self.take(min(size - skipped, FRAME_CHUNK)))
            if not got:
                break
            skipped += got
        return skipped

    def unread(self, data: bytes) -> None:
        size = len(data)
        if size <= self._at and self._buf[self._at - size : self._at] == data:
            self._at -= size  # just taken from the buffer: no copy of the rest of it
            self.pos -= size
            return
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
            chunk = self._read(FRAME_CHUNK)
            if not chunk:
                self.pos += len(remain)
                self._buf, self._at = b"", 0
                return None
            self._buf, self._at = remain + chunk, 0


def read_long(cursor: Cursor, offset: int, consumed: bytearray) -> int:
    """An Avro zig-zag varint; its bytes are appended to `consumed`."""
    value = shift = 0
    for _ in range(10):
        byte = cursor.take(1)
        if not byte:
            raise AvroFramingError(f"data ends inside a length at {cursor.pos}", offset, bytes(consumed), True)
        consumed += byte
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return (value >> 1) ^ -(value & 1)
        shift += 7
    raise AvroFramingError("a length is longer than 10 bytes", offset, bytes(consumed), False)


def encode_long(value: int) -> bytes:
    """An Avro zig-zag varint."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass(frozen=True)
class AvroHeader:
    """A container's header: its bytes, sync marker and metadata."""

    raw: bytes
    sync: bytes
    meta: dict[bytes, bytes]

    @property
    def codec(self) -> str:
        return self.meta.get(b"avro.codec", b"null").decode("utf-8", "replace")

    def check(self) -> SchemaBounds:
        """The writer schema's bounds; raises UnsafeAvroSchema naming why the data is not read."""
        text = self.meta.get(b"avro.schema")
        if text is None:
            raise UnsafeAvroSchema("its Avro header has no avro.schema entry; write the file with an Avro writer")
        try:
            schema = json.loads(text)
        except RecursionError:
            raise UnsafeAvroSchema("its Avro writer schema nests too deep to read; flatten the schema") from None
        except ValueError as err:
            reason = f"its Avro writer schema is not valid JSON ({err}); write the file with an Avro writer"
            raise UnsafeAvroSchema(reason) from None
        try:
            bounds = check_schema(schema)
        except UnsafeAvroSchema as err:
            raise UnsafeAvroSchema(f"its Avro writer {err}") from None
        if self.codec not in CODECS:
            raise UnsafeAvroSchema(
                f"its Avro blocks are compressed with codec {self.codec[:100]!r}, which is not supported here; "
                f"rewrite the file with one of {', '.join(CODECS)}"
            )
        try:
            fastavro.reader(io.BytesIO(self.uncompressed()))
        except Exception as err:  # noqa: BLE001 - fastavro raises many types on a bad schema
            reason = f"its Avro header is unreadable ({type(err).__name__}: {err}); check the writer"
            raise UnsafeAvroSchema(reason) from None
        return bounds

    def uncompressed(self) -> bytes:
        """This header with codec null: what fastavro reads blocks decompressed here under."""
        meta = {**self.meta, b"avro.codec": b"null"}
        parts = [AVRO_MAGIC, encode_long(len(meta))]
        for key, value in meta.items():
            parts += [encode_long(len(key)), key, encode_long(len(value)), value]
        parts += [encode_long(0), self.sync]
        return b"".join(parts)


def read_header(cursor: Cursor) -> AvroHeader:
    """The header, framed (the schema is checked by AvroHeader.check)."""
    raw = bytearray(cursor.take(len(AVRO_MAGIC)))
    if bytes(raw) != AVRO_MAGIC:
        if len(raw) < len(AVRO_MAGIC) and AVRO_MAGIC.startswith(bytes(raw)):
            raise AvroFramingError(f"the file ends after {len(raw)} bytes, inside the header", 0, bytes(raw), True)
        raise AvroFramingError("it does not start with the Avro magic bytes Obj\\x01", 0, bytes(raw), False)
    meta: dict[bytes, bytes] = {}
    while (count := read_long(cursor, 0, raw)) != 0:
        if count < 0:
            count = -count
            read_long(cursor, 0, raw)  # the block's byte size, not needed
        for _ in range(count):
            entry = []
            for _ in range(2):  # key, value
                size = read_long(cursor, 0, raw)
                if size < 0 or len(raw) + size > MAX_AVRO_HEADER_BYTES:
                    raise AvroFramingError(f"header metadata entry of {size} bytes", 0, bytes(raw), False)
                data = cursor.take(size)
                raw += data
                if len(data) < size:
                    raise AvroFramingError("the file ends inside the header", 0, bytes(raw), True)
                entry.append(data)
            meta[entry[0]] = entry[1]
    sync = cursor.take(AVRO_SYNC_SIZE)
    raw += sync
    if len(sync) < AVRO_SYNC_SIZE:
        raise AvroFramingError("the file ends inside the header", 0, bytes(raw), True)
    return AvroHeader(bytes(raw), sync, meta)


@dataclass(frozen=True)
class FramedBlock:
    """A block framed and its sync marker checked; `data` is None when it was too large to
    hold (and was read past)."""

    offset: int
    count: int
    size: int
    data: bytes | None


def block_cap(bounds: SchemaBounds) -> int:
    """The most decompressed bytes a block of this schema may hold."""
    return max(1, min(MAX_AVRO_BLOCK_BYTES, int(AVRO_BLOCK_MEMORY / bounds.expansion)))


def next_block(cursor: Cursor, sync: bytes, hold: int) -> FramedBlock | None:
    """The next block, None at the end of the file. Data over `hold` bytes is read past, not
    held. Raises AvroFramingError where the framing is wrong."""
    offset = cursor.pos
    consumed = bytearray(cursor.take(1))
    if not consumed:
        return None
    cursor.unread(bytes(consumed))
    consumed.clear()
    count = read_long(cursor, offset, consumed)
    size = read_long(cursor, offset, consumed)
    if count < 0 or size < 0:
        raise AvroFramingError(f"block header claims {count} records in {size} bytes", offset, bytes(consumed), False)
    if size > hold:
        got = cursor.skip(size)
        data = None
    else:
        data = cursor.take(size)
        got = len(data)
        consumed += data
    if got < size:
        raise AvroFramingError(
            f"block of {size} bytes ends past the end of the file", offset, bytes(consumed), True, count
        )
    marker = cursor.take(AVRO_SYNC_SIZE)
    consumed += marker
    if len(marker) < AVRO_SYNC_SIZE:
        raise AvroFramingError("the file ends inside a sync marker", offset, bytes(consumed), True, count)
    if marker != sync:
        raise AvroFramingError("sync marker missing after the block", offset, bytes(consumed), False, count)
    return FramedBlock(offset, count, size, data)


def inflate(codec: str, data: bytes, limit: int) -> bytes:
    """A block's data decompressed; raises ValueError (or the codec's error) when it is
    corrupt or decompresses to more than `limit` bytes."""
    if codec == "null":
        out = data
    elif codec == "deflate":
        out = zlib.decompressobj(-15).decompress(data, limit + 1)
    elif codec == "bzip2":
        out = _streams(bz2.BZ2Decompressor, data, limit)
    elif codec == "xz":
        out = _streams(lzma.LZMADecompressor, data, limit)
    elif codec == "zstandard":
        import zstandard  # comes with apache-beam

        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        parts, total = [], 0
        while total <= limit and (piece := reader.read(min(limit + 1 - total, 1 << 20))):
            parts.append(piece)
            total += len(piece)
        out = b"".join(parts)
    else:
        raise ValueError(f"codec {codec!r} is not supported")
    if len(out) > limit:
        raise ValueError(f"it decompresses to more than {limit} bytes, over the block limit")
    return out


def _streams(factory: Callable[[], Any], data: bytes, limit: int) -> bytes:
    """Concatenated bzip2 or xz streams, at most limit + 1 bytes of them."""
    parts, total = [], 0
    rest = data
    while rest and total <= limit:
        decompressor = factory()
        piece = decompressor.decompress(rest, limit + 1 - total)
        parts.append(piece)
        total += len(piece)
        if not decompressor.eof:
            if decompressor.needs_input:
                raise EOFError("compressed data ended before the end-of-stream marker")
            break  # over the limit
        rest = decompressor.unused_data
    return b"".join(parts)


def check_block(block: FramedBlock, plain: bytes | None, bounds: SchemaBounds, cap: int) -> None:
    """Raises BlockUnreadable when a block claims more records than its bytes can hold."""
    plausible = block.count * bounds.min_bytes <= cap
    if plain is None:
        what = f"it is {block.size} bytes, over the {cap}-byte block limit for this schema"
        raise BlockUnreadable(what, block.count if plausible else None)
    if block.count * bounds.min_bytes > len(plain):
        raise BlockUnreadable(
            f"it claims {block.count} records in {len(plain)} bytes, but every record of its schema takes at "
            f"least {bounds.min_bytes} bytes",
            None,
        )


def framed_uncompressed(count: int, plain: bytes, sync: bytes) -> bytes:
    """A block as fastavro reads it under the header's uncompressed() form."""
    return b"".join((encode_long(count), encode_long(len(plain)), plain, sync))


class BlockFeed(io.RawIOBase):
    """A file fastavro reads: `first` then the pieces, each pulled only when fastavro reads
    past what came before (so blocks are framed and decompressed one at a time)."""

    def __init__(self, first: bytes, pieces: Iterator[bytes]) -> None:
        super().__init__()
        self._buf = first
        self._at = 0
        self._pieces = pieces
        self._pos = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(len(self._buf) - self._at, 1)
        parts = []
        while size > 0:
            if self._at >= len(self._buf):
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._buf, self._at = piece, 0
            out = self._buf[self._at : self._at + size]
            self._at += len(out)
            size -= len(out)
            parts.append(out)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def container_record(raw: bytes) -> tuple[int, Any]:
    """(record count, first record) of an Avro container held in memory (a stream record that
    is a whole container file); raises ValueError with a reason when it cannot be read."""
    cursor = Cursor(io.BytesIO(raw).read)
    header = read_header(cursor)
    bounds = header.check()
    cap = block_cap(bounds)
    total = 0
    first: FramedBlock | None = None
    while (block := next_block(cursor, header.sync, len(raw))) is not None:
        total += block.count
        if first is None and block.count:
            first = block
    if total != 1 or first is None:
        return total, None
    plain = inflate(header.codec, first.data or b"", cap)
    check_block(first, plain, bounds, cap)
    feed = io.BytesIO(header.uncompressed() + framed_uncompressed(first.count, plain, header.sync))
    return 1, next(iter(fastavro.reader(feed)))
