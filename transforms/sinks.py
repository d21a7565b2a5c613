"""Aggregates and dead letters -> files under any Beam filesystem, Hive-style partitioned.

Layout: `<output>/dt=YYYY-MM-DD/hour=HH[/region=R]/part-<window>-<pane>-<index>-<digest>.<ext>`.
File names are derived from the content (a digest), so a re-run or a retried bundle writes
the same names with the same bytes instead of duplicating aggregates; each file is written
under a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from typing import Any, Iterable, Iterator, Sequence

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.formats import EXTENSIONS, encode

NAMESPACE = "analytics"


def write_atomically(path: str, data: bytes) -> None:
    """Write to a temporary sibling, then rename over `path` (same name and bytes on retries)."""
    directory, _, name = path.rpartition("/")
    temp = f"{directory}/.tmp-{uuid.uuid4().hex}-{name}"
    with FileSystems.create(temp) as handle:
        handle.write(data)
    FileSystems.rename([temp], [path])


def _compact_time(iso: str) -> str:
    # 2026-01-01T00:01:00Z -> 20260101T000100Z: sortable and safe in object keys.
    return iso.replace("-", "").replace(":", "")


def partition_of(record: dict[str, Any], dimensions: Sequence[str]) -> str:
    start = record["window_start"]
    parts = [f"dt={start[:10]}", f"hour={start[11:13]}"]
    if "region" in dimensions:
        parts.append(f"region={record['region']}")
    return "/".join(parts)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


class _WriteAggregateFiles(beam.DoFn):
    """Writes the records of one (window, pane) as one file per partition directory."""

    def __init__(self, base: str, output_format: str, dimensions: Sequence[str]) -> None:
        self._base = base.rstrip("/")
        self._format = output_format
        self._dims = tuple(dimensions)
        self._records = Metrics.counter(NAMESPACE, "aggregates_written")
        self._files = Metrics.counter(NAMESPACE, "files_written")
        self._panes = Metrics.counter(NAMESPACE, "window_panes_written")

    def write_group(self, records: Iterable[dict[str, Any]]) -> list[str]:
        by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_partition[partition_of(record, self._dims)].append(record)
        written = []
        for partition, rows in sorted(by_partition.items()):
            rows.sort(key=lambda r: tuple(r[d] for d in self._dims))
            data = encode(rows, self._format, self._dims)
            first = rows[0]
            name = (
                f"part-{_compact_time(first['window_start'])}-{_compact_time(first['window_end'])}"
                f"-{first['pane']}-{first['pane_index']}-{_digest(data)}.{EXTENSIONS[self._format]}"
            )
            path = f"{self._base}/{partition}/{name}"
            write_atomically(path, data)
            self._records.inc(len(rows))
            self._files.inc()
            written.append(path)
        self._panes.inc()
        return written

    def process(self, element: tuple[Any, Iterable[dict[str, Any]]]) -> Iterator[str]:
        _, records = element
        yield from self.write_group(records)


class _WriteAggregatesPerBundle(_WriteAggregateFiles):
    """Streaming variant: groups the records of each bundle by (window, pane) and writes them
    when the bundle finishes, so no extra shuffle or trigger sits between a pane and its file."""

    def start_bundle(self) -> None:
        self._pending: dict[tuple, list[dict[str, Any]]] = defaultdict(list)

    def process(self, element: tuple[Any, dict[str, Any]]) -> None:
        key, record = element
        self._pending[key].append(record)

    def finish_bundle(self) -> None:
        for key in sorted(self._pending):
            self.write_group(self._pending[key])
        self._pending.clear()


def _pane_key(record: dict[str, Any]) -> tuple:
    return (record["window_start"], record["window_end"], record["pane"], record["pane_index"])


class WriteAggregates(beam.PTransform):
    """Writes aggregate records; `streaming` writes per bundle instead of grouping per window."""

    def __init__(self, base: str, output_format: str, dimensions: Sequence[str], streaming: bool = False) -> None:
        super().__init__()
        self._base = base
        self._format = output_format
        self._dims = tuple(dimensions)
        self._streaming = streaming

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        keyed = records | "KeyByPane" >> beam.Map(lambda r: (_pane_key(r), r))
        if self._streaming:
            return keyed | "WritePerBundle" >> beam.ParDo(
                _WriteAggregatesPerBundle(self._base, self._format, self._dims)
            )
        return (
            keyed
            | "GroupByPane" >> beam.GroupByKey()
            | "WriteFiles" >> beam.ParDo(_WriteAggregateFiles(self._base, self._format, self._dims))
        )


class _WriteDeadLetters(beam.DoFn):
    def __init__(self, base: str) -> None:
        self._base = base.rstrip("/")
        self._count = Metrics.counter(NAMESPACE, "dead_letters_written")

    def start_bundle(self) -> None:
        self._pending: list[bytes] = []

    def process(self, record: dict[str, Any]) -> None:
        self._pending.append(orjson.dumps(record) + b"\n")

    def finish_bundle(self) -> None:
        if not self._pending:
            return
        data = b"".join(sorted(self._pending))
        write_atomically(f"{self._base}/part-{_digest(data)}.jsonl", data)
        self._count.inc(len(self._pending))
        self._pending = []


class WriteDeadLetters(beam.PTransform):
    """Writes dead-letter dicts as JSON lines, one file per bundle, named by content digest."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self._base = base

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return records | "WriteDeadLetterFiles" >> beam.ParDo(_WriteDeadLetters(self._base))
