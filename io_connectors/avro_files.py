"""An Avro container file read as RawBatches of decoded records, in bounded memory.

A file whose writer schema is refused (see avro_safety) is one dead letter and nothing of it is
read. Otherwise blocks are framed, bounded and decompressed one at a time (avro_blocks) and
their records decoded as batches take them: a batch holds at most `batch` records and about
AVRO_BATCH_MEMORY bytes of decoded records, whatever the block sizes. A corrupt, oversized or
over-claiming block is a dead letter and reading goes on with the next one; broken framing
resyncs at the next sync marker.
"""

from __future__ import annotations

import zlib
from collections import deque
from itertools import islice
from typing import Any, Iterator

import fastavro

from io_connectors.avro_blocks import (
    AVRO_SYNC_SIZE,
    AvroFramingError,
    AvroHeader,
    BlockFeed,
    BlockUnreadable,
    Cursor,
    block_cap,
    check_block,
    framed_uncompressed,
    inflate,
    next_block,
    read_header,
)
from io_connectors.avro_safety import SchemaBounds, UnsafeAvroSchema
from io_connectors.decompress import DecompressedReader, StreamBroken
from io_connectors.file_batches import Batches, stream_failure
from io_connectors.records import TRUNCATED_FILE, UNREADABLE_BLOCK, UNREADABLE_TAIL, RawBatch, ReadFailure

# Estimated memory of the decoded records in one batch (encoded bytes times the schema's
# expansion bound): 50,000 typical events take well under it.
AVRO_BATCH_MEMORY = 256 << 20


def describe(err: Exception) -> str:
    name = "zlib" if isinstance(err, zlib.error) else type(err).__name__
    return f"{name}: {err}"


class AvroFileReader:
    """Reads one Avro container file (`handle`, raw or decompressed) as RawBatches."""

    def __init__(self, path: str, handle: Any, batch: int) -> None:
        self._path = path
        self._handle = handle
        compressed = isinstance(handle, DecompressedReader)
        self._at = "decompressed byte" if compressed else "byte"
        self._label = "decompressed-byte" if compressed else "byte"
        self._cursor = Cursor(handle.read)
        self._batches = Batches(path, batch, first=0, max_bytes=AVRO_BATCH_MEMORY)

    def batches(self) -> Iterator[RawBatch]:
        path, batches, label = self._path, self._batches, self._label
        try:
            header = read_header(self._cursor)
            try:
                bounds = header.check()
            except UnsafeAvroSchema as refused:
                reason = f"{path}: nothing in the file was read: {refused}"
                yield from batches.fail(ReadFailure(reason, b"", UNREADABLE_TAIL, None, 0, False), 0, f"{label}:0")
                return
            while True:
                bad = yield from self._blocks(header, bounds)
                if bad is None:
                    break
                if not (yield from self._resync(header.sync, bad)):
                    break
        except AvroFramingError as bad:  # the header itself
            kind = TRUNCATED_FILE if bad.at_end else UNREADABLE_TAIL
            reason = f"{path}: not a readable Avro container file ({bad}); nothing in it could be read: "
            reason += "re-upload the file" if bad.at_end else "check that it is an Avro container file (.avro)"
            yield from batches.fail(ReadFailure(reason, b"", kind, None, bad.offset, False), 0, f"{label}:{bad.offset}")
        except StreamBroken as broken:
            # Every block framed before the compressed stream broke has been decoded.
            failure = stream_failure(path, broken, batches.records, self._handle.pos, b"")
            yield from batches.fail(failure, 0, f"compressed-byte:{broken.start}")
            return
        yield from batches.flush()

    def _blocks(self, header: AvroHeader, bounds: SchemaBounds) -> Iterator[RawBatch]:
        """Decodes blocks up to the end of the file or to broken framing, which it returns."""
        cap = block_cap(bounds)
        hold = cap + cap // 8 + (64 << 10)  # compressed data can be a little larger than its content
        events: deque = deque()  # in file order: ("block", FramedBlock, plain size) or ("failure", ...)
        broken: list[AvroFramingError] = []

        def pieces() -> Iterator[bytes]:
            while True:
                try:
                    block = next_block(self._cursor, header.sync, hold)
                except AvroFramingError as bad:
                    broken.append(bad)
                    return
                if block is None:
                    return
                try:
                    plain = inflate(header.codec, block.data, cap) if block.data is not None else None
                    check_block(block, plain, bounds, cap)
                except BlockUnreadable as err:
                    events.append(("failure", block, str(err), err.records_lost))
                    continue
                except Exception as err:  # noqa: BLE001 - decompressors raise many types on corrupt data
                    lost = block.count if block.count * bounds.min_bytes <= cap else None
                    events.append(("failure", block, describe(err), lost))
                    continue
                events.append(("block", block, len(plain)))
                yield framed_uncompressed(block.count, plain, header.sync)

        try:
            for decoded in fastavro.block_reader(BlockFeed(header.uncompressed(), pieces())):
                while events:
                    event = events.popleft()
                    if event[0] == "block":
                        yield from self._records(decoded, event[1], event[2], bounds)
                        break
                    yield from self._failure(*event[1:])
        except StreamBroken:
            while events:  # blocks found unreadable before the stream broke
                yield from self._failure(*events.popleft()[1:])
            raise
        while events:
            yield from self._failure(*events.popleft()[1:])
        return broken[0] if broken else None

    def _records(self, decoded: Any, block: Any, size: int, bounds: SchemaBounds) -> Iterator[RawBatch]:
        """Takes a block's records as batches have room for them."""
        batches = self._batches
        count = block.count
        per_record = max(1, int(size * bounds.expansion) // max(count, 1))
        records = iter(decoded)
        done = 0
        while done < count:
            take = min(batches.room(per_record), count - done)
            try:
                taken = list(islice(records, take))
            except Exception as err:  # noqa: BLE001 - corrupt records make fastavro raise many types
                yield from self._failure(block, describe(err), count - done, done)
                return
            yield from batches.add(taken, per_record * len(taken))
            done += len(taken)
            if len(taken) < take:
                break

    def _failure(self, block: Any, why: str, lost: int | None, done: int = 0) -> Iterator[RawBatch]:
        path, at = self._path, self._at
        if lost is None:
            what = "how many records it held is unknown"
        elif done:
            what = f"its records from number {done + 1} on ({lost} of {block.count}) are lost"
        else:
            what = f"its {lost} records are lost"
        reason = (
            f"{path}: Avro block at {at} {block.offset} is unreadable ({why}); {what} and reading went on "
            "with the next block: re-upload an intact copy of the file to recover them"
        )
        failure = ReadFailure(reason, b"", UNREADABLE_BLOCK, lost, block.offset, False)
        yield from self._batches.fail(failure, lost or 0, f"{self._label}:{block.offset}")

    def _resync(self, sync: bytes, bad: AvroFramingError) -> Iterator[RawBatch]:
        """Skips to the block after the next sync marker; returns whether reading can go on."""
        path, at, cursor, batches = self._path, self._at, self._cursor, self._batches
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
        yield from batches.fail(failure, 0, f"{self._label}:{bad.offset}")
        if marker is None:
            return False
        batches.restart(f"{path}@{marker + AVRO_SYNC_SIZE}", 0)
        return True
