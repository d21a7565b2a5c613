"""The element every source emits: a batch of raw records and where each came from."""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence


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


class ReadFailure(NamedTuple):
    """Stands in a batch for input a source could not read (say a corrupt Avro block), so the
    failure reaches the dead-letter output instead of killing the run."""

    reason: str
    payload: bytes = b""
