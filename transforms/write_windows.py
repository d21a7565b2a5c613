"""Write one roll of aggregates: the files of one (dt/hour, shard) key."""

from __future__ import annotations

from typing import Iterable, Iterator

import apache_beam as beam

from transforms.file_chunks import Chunk
from transforms.sinks import AggregateFileWriter, shard_name


class WriteRolls(beam.DoFn):
    """Writes each ((hour, shard), chunks) element, the chunks (transforms/file_chunks.py) a
    GroupByKey gathered for one roll, as one file per partition directory.

    Files are named by shard (one of `shards`), prefixed by `run_key` when one is given, and with
    `content_named` also by their window range and digest, for keys that roll more than once
    (see transforms/rolling.py).
    """

    def __init__(
        self,
        output_path: str,
        output_format: str,
        dimensions: tuple[str, ...],
        shards: int,
        run_key: str,
        content_named: bool,
    ) -> None:
        self._writer = AggregateFileWriter(output_path, output_format, dimensions)
        self._shards = shards
        # A series of --resume runs writes the same hours in turn: each run's files carry the key of
        # where it started reading, so a later run never replaces an earlier one's, while a re-run
        # after a failure (same start) replaces what the failed run wrote.
        self._prefix = f"r{run_key}-" if run_key else ""
        self._content_named = content_named

    def setup(self) -> None:
        self._writer.setup()

    def process(self, element: tuple[tuple[str, int], Iterable[Chunk]]) -> Iterator[str]:
        (_, shard), chunks = element
        name = self._prefix + shard_name(shard, self._shards)
        yield from self._writer.write_chunks(chunks, name, self._content_named)
