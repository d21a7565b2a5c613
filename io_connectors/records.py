"""The element every source emits: a batch of raw records and where each came from."""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

# Larger records are refused rather than parsed (the decoder dead-letters them): a single
# runaway record must not stall a batch. Readers use it to bound what they carry.
MAX_RECORD_BYTES = 1 << 20


class RawBatch(NamedTuple):
    """A batch of undecoded records from one source partition.

    Batches, not single records, flow between steps: per-element overhead in Beam
    Python is tens of microseconds, so one element per record caps throughput.

    `records` holds bytes payloads; Avro container files may hand over already-decoded
    dicts instead. `positions` names each record's position in its source (a sequence
    number, an offset); when it is None, record i is at `first_offset + i`.
    `arrival_ms`, when the source knows it, is each record's arrival time (epoch ms).
    """

    source: str
    records: Sequence[Any]
    positions: Sequence[str] | None = None
    first_offset: int = 0
    arrival_ms: Sequence[int] | None = None

    def position(self, index: int) -> str:
        if self.positions is not None:
            return f"{self.source}@{self.positions[index]}"
        return f"{self.source}:{self.first_offset + index}"


# What a ReadFailure stands for. The first three are input the source could not read at all;
# an over-long record was read past (and counts as a record read).
TRUNCATED_FILE = "truncated file"
UNREADABLE_TAIL = "unreadable tail"
UNREADABLE_BLOCK = "unreadable block"
RECORD_OVER_LIMIT = "record over the limit"
UNREADABLE_KINDS = (TRUNCATED_FILE, UNREADABLE_TAIL, UNREADABLE_BLOCK)


class ReadFailure(NamedTuple):
    """Stands in a batch for input a source could not read (say a corrupt Avro block, a gzip
    stream cut short), so the failure reaches the dead-letter output instead of killing the run.

    `kind` is one of TRUNCATED_FILE, UNREADABLE_TAIL (the rest of a file from some offset),
    UNREADABLE_BLOCK (reading went on after it) or RECORD_OVER_LIMIT. `records_lost` is how
    many records the unreadable part held, when the format says so (an Avro block header
    does; a compressed line file does not). `byte_offset` is where the problem was found,
    counted in the file's compressed bytes when `compressed_offset` is true.

    A source emits each ReadFailure in a batch of its own: fast decode paths take batches
    of records only.
    """

    reason: str
    payload: bytes = b""
    kind: str = UNREADABLE_BLOCK
    records_lost: int | None = None
    byte_offset: int | None = None
    compressed_offset: bool = False
