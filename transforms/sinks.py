"""Aggregates and dead letters -> files under any Beam filesystem, Hive-style partitioned.

Layout: `<output>/dt=YYYY-MM-DD/hour=HH[/region=R]/part-<shard>.<ext>` (bounded runs) or
`.../part-<first window start>-<last window end>-<digest>-<shard>.<ext>` (streaming rolls; see
transforms/rolling.py). Partition values are encoded as Hive and Spark escape them
(transforms/partition_paths.py), so distinct values give distinct paths, and every write is
checked to land under the output root. A name is fixed by partition and shard where a run
writes one file per (partition, shard), else also by the content's digest, so a re-run or a
retried bundle writes the same names with the same bytes instead of duplicating aggregates.
Readers never see half a file: on a local or mounted filesystem each file is written under a
temporary name and renamed; on S3, GCS and Azure Blob an object only becomes visible when its upload is
committed (CompleteMultipartUpload, the final resumable-upload request, Put Block List), so
the object is written straight to its final key (a copy-and-delete "rename" there would
double the traffic and add nothing).

Writes go through Beam's own IO clients for each store (S3IO, GcsIO, BlobStorageIO), built
once per DoFn instance from the pipeline options that Beam hands its filesystems, instead of
`FileSystems.create`, which builds a new client (a new boto3 session, ~0.2 s) for every call.
The S3 client retries in boto3's standard mode (see transforms/store_clients.py), so a store
that refuses writes for a minute or two delays the run instead of failing it. See docs/storage.md.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from typing import Any, Callable, Iterable, Iterator, Sequence

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.metrics import FILES_WRITTEN, NAMESPACE, Counter
from transforms.file_chunks import ORDER, Chunk, file_bytes
from transforms.formats import EXTENSIONS, MIME_TYPES
from transforms.partition_paths import OutputRoot
from transforms.store_clients import gcs_storage_client, s3_store_client

OBJECT_STORE_SCHEMES = ("s3", "gs", "azfs")

Writer = Callable[[str, bytes, str], None]


def write_atomically(path: str, data: bytes, mime_type: str = "application/octet-stream") -> None:
    """Write to a temporary sibling, then rename over `path` (same name and bytes on retries)."""
    directory, _, name = path.rpartition("/")
    temp = f"{directory}/.tmp-{uuid.uuid4().hex}-{name}"
    with FileSystems.create(temp, mime_type=mime_type) as handle:
        handle.write(data)
    FileSystems.rename([temp], [path])


def filesystem_options() -> PipelineOptions:
    """The pipeline options Beam gave its filesystems in this process: Pipeline() sets them on the
    launching process and the SDK harness on every worker (Dataflow, Flink, multi-process)."""
    options = FileSystems._pipeline_options  # noqa: SLF001 - Beam's hand-off to filesystems
    if isinstance(options, PipelineOptions):
        return options
    return PipelineOptions.from_dictionary(options) if options else PipelineOptions([])


class SinkWriteError(OSError):
    """The store refused a write past its client's retries; nothing was committed under the name."""


def object_writer(scheme: str, options: PipelineOptions | None = None) -> Writer:
    """`write(path, data, mime_type)` for one scheme, holding one store client for its lifetime."""
    if scheme not in OBJECT_STORE_SCHEMES:
        return write_atomically
    options = options or filesystem_options()
    refused: tuple[type[Exception], ...] = ()  # the store's "gave up after retries" errors
    if scheme == "s3":
        from apache_beam.io.aws.clients.s3.messages import S3ClientError
        from apache_beam.io.aws.s3io import S3IO

        store: Any = S3IO(client=s3_store_client(options))
        refused = (S3ClientError,)
    elif scheme == "gs":
        from apache_beam.io.gcp.gcsio import GcsIO

        store = GcsIO(storage_client=gcs_storage_client(options), pipeline_options=options)
    else:
        from apache_beam.io.azure.blobstorageio import BlobStorageIO

        store = BlobStorageIO(pipeline_options=options)

    def write(path: str, data: bytes, mime_type: str = "application/octet-stream") -> None:
        # The object appears under `path` only when close() commits the upload.
        try:
            with store.open(path, "wb", mime_type=mime_type) as handle:
                handle.write(data)
        except refused as err:
            reason = str(getattr(err, "message", err)).rstrip(".")
            raise SinkWriteError(
                f"writing {path} failed after the store client's retries: {reason}. "
                "Nothing was committed under that name. Check that the bucket exists and accepts writes, "
                "then rerun the job (it writes the same file names, so nothing is duplicated); to wait "
                "out longer outages, raise AWS_MAX_ATTEMPTS."
            ) from err

    return write


def _scheme(path: str) -> str:
    return path.split("://", 1)[0].lower() if "://" in path else "file"


def _compact_time(iso: str) -> str:
    # 2026-01-01T00:01:00Z -> 20260101T000100Z: sortable and safe in object keys.
    return iso.replace("-", "").replace(":", "")


def _digest(data: bytes) -> str:
    # 128 bits: content-named files of one partition, window and pane never share a name
    # unless their bytes are equal (a 48-bit prefix could be made to collide on purpose).
    return hashlib.sha256(data).hexdigest()[:32]


def guarded(base: str, write: Writer) -> Writer:
    """`write`, refusing (OutputPathError) any path that would land outside `base`."""
    root = OutputRoot(base)

    def checked(path: str, data: bytes, mime_type: str = "application/octet-stream") -> None:
        write(root.check(path), data, mime_type)

    return checked


def shard_name(shard: int, shards: int) -> str:
    return f"s{shard:03d}of{shards:03d}"


class AggregateFileWriter:
    """Writes aggregate records as one file per partition directory; usable inside any DoFn
    (call `setup()` from the DoFn's setup)."""

    def __init__(self, base: str, output_format: str, dimensions: Sequence[str]) -> None:
        self._base = base.rstrip("/")
        self._format = output_format
        self._dims = tuple(dimensions)
        self._records = Counter("aggregates_written")
        self._files = Counter(FILES_WRITTEN)

    def setup(self) -> None:
        self._write = guarded(self._base, object_writer(_scheme(self._base)))

    def write_chunks(self, chunks: Iterable[Chunk], shard: str | None = None, content_named: bool = False) -> list[str]:
        """Writes the chunks (transforms/file_chunks.py) as one file per partition directory, named
        `part-<shard>` when the caller guarantees one group of chunks per (partition, shard), else
        (`content_named`, or no shard) by the window range and a digest of the bytes:
        `part-<first start>-<last end>-<digest>[-<shard>]`."""
        by_partition: dict[str, list[Chunk]] = defaultdict(list)
        for chunk in chunks:
            by_partition[chunk[0]].append(chunk)
        written = []
        for partition, parts in sorted(by_partition.items()):
            parts.sort(key=ORDER)
            data = file_bytes(parts, self._format, self._dims)
            name = shard
            if content_named or shard is None:
                first, last = parts[0][1][0], max(chunk[1][1] for chunk in parts)
                name = f"{_compact_time(first)}-{_compact_time(last)}-{_digest(data)}" + (f"-{shard}" if shard else "")
            path = f"{self._base}/{partition}/part-{name}.{EXTENSIONS[self._format]}"
            self._write(path, data, MIME_TYPES[self._format])
            self._records.inc(sum(chunk[2] for chunk in parts))
            self._files.inc()
            written.append(path)
        return written


def _dead_letter_line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"


def dead_letter_lines(records: Iterable[dict[str, Any]]) -> bytes:
    """One batch's dead letters as the bytes of their file: JSON lines with sorted keys, the lines
    sorted, so the same dead letters give the same bytes (and file name) in whatever order they came."""
    return b"".join(sorted(map(_dead_letter_line, records)))


def dead_letter_records(lines: bytes) -> Iterator[dict[str, Any]]:
    """The dead-letter dicts of `dead_letter_lines` bytes, one by one."""
    # orjson escapes every control character inside strings, so a newline byte only ends a line.
    start = 0
    while start < len(lines):
        end = lines.find(b"\n", start)
        end = len(lines) if end < 0 else end
        if end > start:
            yield orjson.loads(lines[start:end])
        start = end + 1


def dead_letter_name(lines: bytes, hidden: bool = False) -> str:
    """`part-<digest>.jsonl`; `hidden` (dead letters inside the aggregates' table) gives
    `_part-<digest>.ndjson`, which Hive, Athena and Spark skip (leading `_`) and a DuckDB glob of
    the table's `**/*.jsonl` does not match."""
    return f"_part-{_digest(lines)}.ndjson" if hidden else f"part-{_digest(lines)}.jsonl"


class _WriteDeadLetterLines(beam.DoFn):
    """Writes each element (one batch's `dead_letter_lines`) as `dead_letter_name(...)`, straight away."""

    def __init__(self, base: str, hidden: bool = False) -> None:
        self._base = base.rstrip("/")
        self._hidden = hidden
        self._count = Metrics.counter(NAMESPACE, "dead_letters_written")

    def setup(self) -> None:
        self._write = guarded(self._base, object_writer(_scheme(self._base)))

    def process(self, lines: bytes) -> None:
        if not isinstance(lines, bytes):
            raise TypeError(
                f"WriteDeadLetters takes the bytes of dead_letter_lines(records), one element per batch, "
                f"not {type(lines).__name__}: serialize each batch's dead-letter dicts with dead_letter_lines"
            )
        if not lines:
            return
        self._write(f"{self._base}/{dead_letter_name(lines, self._hidden)}", lines, MIME_TYPES["jsonl"])
        self._count.inc(lines.count(b"\n"))


class WriteDeadLetters(beam.PTransform):
    """Writes dead letters, each element one batch's `dead_letter_lines`, to `part-<digest>.jsonl`
    (`hidden`: `_part-<digest>.ndjson`, for dead letters inside the aggregates' table).

    Each element is written as it comes, with no grouping, so memory holds one batch's dead
    letters at most, whatever their total. The name is the digest of the bytes, and a source
    batch is deterministic (same file, range and batch size give the same batch), so a re-run or
    a retried bundle rewrites the same names with the same bytes; bounded and unbounded input
    take the same path."""

    def __init__(self, base: str, hidden: bool = False) -> None:
        super().__init__()
        self._base = base
        self._hidden = hidden

    def expand(self, lines: beam.PCollection) -> beam.PCollection:
        return lines | "WriteDeadLetterFiles" >> beam.ParDo(_WriteDeadLetterLines(self._base, self._hidden))
