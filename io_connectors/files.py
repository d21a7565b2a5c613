"""Bounded file source: NDJSON lines or Avro container files, read as RawBatches.

Any filesystem Beam knows works (local, s3://, gs://, azfs://); compression is detected
from the extension (.gz, .bz2, .zst, ...).
"""

from __future__ import annotations

from typing import Iterator

import apache_beam as beam
import fastavro
from apache_beam.io.filesystems import FileSystems

from io_connectors.records import RawBatch, ReadFailure

DEFAULT_BATCH = 50_000
READ_CHUNK = 8 << 20


def match_files(pattern: str) -> list[str]:
    """Paths matching a glob, sorted; raises FileNotFoundError naming the pattern when none do."""
    try:
        results = FileSystems.match([pattern])
    except Exception as err:  # noqa: BLE001 - Beam raises BeamIOError and plain IOErrors here
        raise FileNotFoundError(f"cannot list {pattern!r}: {err}") from err
    paths = sorted(meta.path for result in results for meta in result.metadata_list)
    if not paths:
        raise FileNotFoundError(f"no file matches {pattern!r}; check the path or glob.")
    return paths


class _ReadFile(beam.DoFn):
    def __init__(self, input_format: str, batch_size: int) -> None:
        self._format = input_format
        self._batch = batch_size

    def process(self, path: str) -> Iterator[RawBatch]:
        with FileSystems.open(path) as handle:
            if self._format == "avro":
                yield from self._avro(path, handle)
            else:
                yield from self._lines(path, handle)

    def _lines(self, path: str, handle) -> Iterator[RawBatch]:  # noqa: ANN001 - a Beam file handle
        # Large reads split in C are several times faster than iterating the file line by line.
        pending: list[bytes] = []
        first = 1  # positions are 1-based line numbers, as editors show them
        tail = b""
        while True:
            chunk = handle.read(READ_CHUNK)
            data = tail + chunk
            if not chunk:
                if data:
                    pending.append(data.rstrip(b"\r"))
                break
            cut = data.rfind(b"\n")
            if cut < 0:
                tail = data
                continue
            lines = data[:cut].split(b"\n")
            tail = data[cut + 1 :]
            if b"\r" in data:
                lines = [line.rstrip(b"\r") for line in lines]
            pending.extend(lines)
            while len(pending) >= self._batch:
                yield RawBatch(path, pending[: self._batch], first_offset=first)
                first += self._batch
                pending = pending[self._batch :]
        for start in range(0, len(pending), self._batch):
            yield RawBatch(path, pending[start : start + self._batch], first_offset=first + start)

    def _avro(self, path: str, handle) -> Iterator[RawBatch]:  # noqa: ANN001 - a Beam file handle
        batch: list = []
        first = 0
        try:
            for record in fastavro.reader(handle):
                batch.append(record)
                if len(batch) >= self._batch:
                    yield RawBatch(path, batch, first_offset=first)
                    first += len(batch)
                    batch = []
        except (ValueError, EOFError, OSError, TypeError, KeyError, IndexError) as err:
            batch.append(ReadFailure(f"unreadable Avro container after record {first + len(batch)}: {err}"))
        if batch:
            yield RawBatch(path, batch, first_offset=first)


class ReadFiles(beam.PTransform):
    """Reads every file matching `pattern` as RawBatches of lines (json) or records (avro)."""

    def __init__(self, pattern: str, input_format: str = "json", batch_size: int = DEFAULT_BATCH) -> None:
        super().__init__()
        self._pattern = pattern
        self._format = input_format
        self._batch = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        # Matched at construction so a missing file fails before the pipeline starts.
        paths = match_files(self._pattern)
        return (
            pbegin
            | "Paths" >> beam.Create(paths)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadBatches" >> beam.ParDo(_ReadFile(self._format, self._batch))
        )
