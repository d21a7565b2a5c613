"""RawBatches of a file's records, bounded by record count and by bytes, and the dead letter of
a broken compressed stream."""

from __future__ import annotations

from typing import Iterator

from io_connectors.decompress import StreamBroken
from io_connectors.records import RawBatch, ReadFailure

DEFAULT_BATCH = 50_000
# A batch closes at this many bytes of payload, whatever its record count: lines of up to
# MAX_CARRIED_BYTES would otherwise make one batch of 50,000 records hundreds of GB.
DEFAULT_BATCH_BYTES = 64 << 20


class Batches:
    """Collects records into RawBatches of at most `size` records, numbering them from `first`;
    a batch also closes once it holds `max_bytes` (as charged by add). A failure is emitted in
    a batch of its own after the records before it."""

    def __init__(self, source: str, size: int, first: int, max_bytes: int = DEFAULT_BATCH_BYTES) -> None:
        self.source = source
        self._size = size
        self._max_bytes = max_bytes
        self.first = first  # position of pending[0]
        self.records = 0  # records added so far
        self._pending: list = []
        self._bytes = 0

    def room(self, per_record: int) -> int:
        """How many records charged `per_record` bytes each fit before the batch closes (at
        least one)."""
        by_count = self._size - len(self._pending)
        left = self._max_bytes - self._bytes
        by_bytes = -(-left // per_record) if per_record > 0 else by_count
        return max(1, min(by_count, by_bytes))

    def add(self, records: list, size: int) -> Iterator[RawBatch]:
        """Adds records that take `size` bytes together; emits every batch that fills."""
        self._pending.extend(records)
        self._bytes += size
        self.records += len(records)
        while len(self._pending) >= self._size:
            # Bytes are charged to the records that stay in proportion to their count.
            self._bytes = self._bytes * (len(self._pending) - self._size) // len(self._pending)
            yield RawBatch(self.source, self._pending[: self._size], first_offset=self.first)
            self.first += self._size
            self._pending = self._pending[self._size :]
        if self._bytes >= self._max_bytes:
            yield from self.flush()

    def flush(self) -> Iterator[RawBatch]:
        if self._pending:
            yield RawBatch(self.source, self._pending, first_offset=self.first)
            self.first += len(self._pending)
            self._pending = []
        self._bytes = 0

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


def stream_failure(path: str, broken: StreamBroken, records: int, decompressed: int, partial: bytes) -> ReadFailure:
    """The dead letter of a compressed stream that cannot be read on."""
    cut = f"; the payload holds the {len(partial)} bytes of the cut-off record" if partial else ""
    before = f"{records} records were read before it, up to decompressed byte {decompressed}"
    reason = (
        f"{path}: {broken.what}; {before if decompressed else 'nothing was read before it'}{cut}; "
        f"the rest of the file is unreadable: {broken.advice}"
    )
    return ReadFailure(reason, partial, broken.kind, None, broken.start, True)
