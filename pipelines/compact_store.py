"""The table's files on any store, for `pipelines.compact`: list, read, write, delete, by path
relative to the table root.

Local files go through Beam's FileSystems (writes as transforms/sinks.py writes them: a temporary
sibling renamed into place). S3, GCS and Azure Blob go through Beam's own IO clients, built with
the sinks' helpers (transforms/store_clients.py) and written with the sinks' writer, so the
command reaches a store exactly as the pipeline's sinks do (endpoint options, AWS_ENDPOINT_URL,
STORAGE_EMULATOR_HOST, AZURE_STORAGE_CONNECTION_STRING) and an object appears only complete.
"""

from __future__ import annotations

import os
from typing import Any

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.uri import SinkSpec
from transforms.sinks import guarded, object_writer
from transforms.store_clients import gcs_storage_client, s3_store_client


class StoreError(OSError):
    """The store refused a list, read or delete; the message names the path."""


def _deleted(error: Any) -> bool:  # noqa: ANN401 - a store's per-path delete result
    # None: deleted; 404: already gone (S3 reports a missing key as deleted, Azure as 404).
    return error is None or error == 404 or getattr(error, "code", None) == 404


class TableStore:
    """Files under one table root (a parsed --output), addressed by paths relative to it."""

    def __init__(self, sink: SinkSpec, options: PipelineOptions) -> None:
        self.scheme = sink.scheme
        self.root = sink.path.rstrip("/")
        self._write = guarded(self.root, object_writer(self.scheme, options))
        self._io: Any = None
        if self.scheme == "s3":
            from apache_beam.io.aws.s3io import S3IO

            self._io = S3IO(client=s3_store_client(options))
        elif self.scheme == "gs":
            from apache_beam.io.gcp.gcsio import GcsIO

            self._io = GcsIO(storage_client=gcs_storage_client(options), pipeline_options=options)
        elif self.scheme == "azfs":
            from apache_beam.io.azure.blobstorageio import BlobStorageIO

            self._io = BlobStorageIO(pipeline_options=options)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def exists(self) -> bool:
        """Whether the root is there: a local directory; on object stores, always (a prefix)."""
        return self._io is not None or os.path.isdir(self.root)

    def list(self) -> dict[str, int]:
        """Every file under the root, hidden ones included: relative path -> size in bytes."""
        prefix = self.root + "/"
        found: dict[str, int] = {}
        if self._io is None:
            # A walk rather than FileSystems.match: a root may hold glob characters ([, *, ?).
            for directory, _, names in os.walk(self.root):
                for name in names:
                    path = os.path.join(directory, name)
                    try:
                        found[path[len(prefix) :]] = os.path.getsize(path)
                    except FileNotFoundError:
                        continue  # removed since the walk saw it (a writer's temporary file)
            return found
        try:
            for path, size in self._io.list_files(prefix):
                if path.startswith(prefix):
                    found[path[len(prefix) :]] = size
        except Exception as err:  # each store's client has its own errors (a missing bucket, no access)
            raise StoreError(f"cannot list {prefix}: {type(err).__name__}: {err}") from err
        return found

    def read(self, relative: str) -> bytes:
        path = self.path(relative)
        try:
            if self._io is None:
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                    return handle.read()
            with self._io.open(path, "rb") as handle:
                return handle.read()
        except Exception as err:  # each store's client has its own errors: all name the path here
            raise StoreError(f"cannot read {path}: {type(err).__name__}: {err}") from err

    def write(self, relative: str, data: bytes, mime_type: str) -> None:
        """Writes the whole file or nothing (a temporary name renamed, or one committed upload)."""
        self._write(self.path(relative), data, mime_type)

    def delete(self, relatives: list[str]) -> None:
        """Deletes the files; one already gone counts as deleted."""
        paths = [self.path(r) for r in relatives]
        if not paths:
            return
        if self._io is None:
            try:
                FileSystems.delete(paths)
            except BeamIOError as err:
                failed = {p: e for p, e in err.exception_details.items() if os.path.exists(p)}
                if failed:
                    raise StoreError(f"cannot delete {', '.join(sorted(failed))}: {err}") from err
            return
        try:
            results = self._io.delete_batch(paths) if self.scheme == "gs" else self._io.delete_files(paths)
        except Exception as err:  # each store's client has its own errors
            raise StoreError(f"cannot delete {', '.join(paths)}: {type(err).__name__}: {err}") from err
        failed = [f"{path} ({error})" for path, error in results if not _deleted(error)]
        if failed:
            raise StoreError(f"cannot delete {', '.join(failed)}")
