"""The aggregate files under an --output URI, read into one Arrow table for `pipelines.query`.

Stores are reached through fsspec filesystems (local, s3fs, gcsfs, adlfs) with the settings the
sinks use (transforms/store_clients.py): Beam's S3 options or boto3's environment
(AWS_ENDPOINT_URL...), STORAGE_EMULATOR_HOST for a GCS emulator, AZURE_STORAGE_CONNECTION_STRING or
--blob_service_endpoint for Azure Blob. DuckDB's own network and Avro extensions would have to be
downloaded at run time, so every file is read here (pyarrow, orjson, fastavro) and DuckDB sees one
Arrow table.

The table is the Hive layout `dt=.../hour=...[/region=...]/<file>.<jsonl|parquet|avro>`: only
directories of `name=value` segments are part of it; a file or directory whose name starts with
`_` or `.` (dead letters placed inside the root, in-flight `.tmp-` files) is never read, nor is
any other directory.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import fastavro
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import AzureOptions, PipelineOptions, S3Options

from io_connectors.uri import SinkSpec, UriError, parse_sink, redact_uri
from transforms.compaction import FIXED_COLUMNS, partitions
from transforms.formats import METRIC_FIELDS, arrow_schema
from transforms.partition_paths import decode, is_cut
from transforms.store_clients import AZURE_CONNECTION_STRING_ENV, gcs_emulator_host

LOG = logging.getLogger(__name__)
PARTITION_COLUMNS = ("dt", "hour", "region")
DOUBLE_FIELDS = tuple(name for name, kind in METRIC_FIELDS if kind == "double")
# jsonl holds non-finite doubles as these strings (transforms/formats.py): JSON has no literal for them.
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Files fetched per call: object stores answer many small reads at once (fsspec runs them concurrently).
FETCH_BATCH = 256
INSTALL_HINT = "pip install 'beam-regional-analytics[{extra}]'"


class QueryError(ValueError):
    """A query that cannot run (nothing to read, an unreachable store, bad SQL, a bad option); the
    message says what to do."""


@dataclass
class Listing:
    """The table's files under a root, and what was passed over."""

    root: str
    files: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (fs path, raw partition values)
    skipped: int = 0


def _require(module: str, extra: str) -> Any:  # noqa: ANN401 - a module
    try:
        return __import__(module)
    except ImportError:
        raise QueryError(
            f"reading this store needs the {module} package, which is not installed; {INSTALL_HINT.format(extra=extra)}"
        ) from None


def filesystem(sink: SinkSpec, options: PipelineOptions) -> tuple[Any, str]:
    """(fsspec filesystem, root path inside it) for a parsed output URI, with the sinks' store settings."""
    if sink.scheme == "file":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), os.path.abspath(sink.path)
    location = sink.path.split("://", 1)[1].rstrip("/")
    if sink.scheme == "s3":
        s3fs = _require("s3fs", "aws")
        s3 = options.view_as(S3Options)
        # Unset options stay None, so that botocore's own configuration (AWS_ENDPOINT_URL_S3, the
        # credential chain, AWS_REGION) applies, as it does for the sink's boto3 client.
        client_kwargs = {"region_name": s3.s3_region_name, "api_version": s3.s3_api_version}
        if s3.s3_verify is not None:
            client_kwargs["verify"] = s3.s3_verify
        fs = s3fs.S3FileSystem(
            endpoint_url=s3.s3_endpoint_url,
            use_ssl=not s3.s3_disable_ssl,
            client_kwargs={k: v for k, v in client_kwargs.items() if v is not None},
            skip_instance_cache=True,
        )
        return fs, location
    if sink.scheme == "gs":
        _require("gcsfs", "gcp")
        # The JSON API filesystem, as Beam's GcsIO uses: gcsfs's default class first asks the gRPC
        # storage-control API for the bucket's type, which an emulator lacks (a minute's timeout).
        from gcsfs.core import GCSFileSystem

        emulator = gcs_emulator_host()
        if emulator:
            # As the sinks do: an emulator is reached anonymously, not after ~25 s looking for credentials.
            return GCSFileSystem(endpoint_url=emulator, token="anon", skip_instance_cache=True), location
        return GCSFileSystem(skip_instance_cache=True), location
    adlfs = _require("adlfs", "azure")
    account, _, path = location.partition("/")
    connection_string = os.environ.get(AZURE_CONNECTION_STRING_ENV)
    if connection_string:
        fs = adlfs.AzureBlobFileSystem(connection_string=connection_string, skip_instance_cache=True)
    else:
        from azure.identity.aio import DefaultAzureCredential

        azure = options.view_as(AzureOptions)
        endpoint = azure.blob_service_endpoint
        host = endpoint.split("://", 1)[-1].split("/", 1)[0] if endpoint else None
        # Azure AD, as Beam's BlobStorageIO does without a connection string (a user-assigned
        # managed identity when its client id is given).
        credential = DefaultAzureCredential(managed_identity_client_id=azure.azure_managed_identity_client_id)
        fs = adlfs.AzureBlobFileSystem(
            account_name=account, account_host=host, credential=credential, skip_instance_cache=True
        )
    return fs, path


def list_files(fs: Any, root: str) -> Listing:  # noqa: ANN401 - an fsspec filesystem
    """Every table file under `root` with its raw partition values (one listing call on object
    stores), chosen by the rule every reader of the table follows (transforms/compaction.partitions)."""
    listing = Listing(root)
    prefix = root.rstrip("/") + "/"
    found = fs.find(root, withdirs=False, detail=True)
    sizes = {path[len(prefix) :]: info.get("size") or 0 for path, info in found.items() if path.startswith(prefix)}
    for directory, partition in sorted(partitions(sizes).items()):
        values = dict(segment.split("=", 1) for segment in directory.split("/"))
        listing.files += [(f"{prefix}{directory}/{name}", values) for name in sorted(partition.files)]
    listing.skipped = len(found) - len(listing.files)
    return listing


def _dimensions(columns: Sequence[str]) -> list[str]:
    return [name for name in columns if name not in FIXED_COLUMNS]


class _MissingColumns(ValueError):
    pass


def _schema_of(names: Sequence[str]) -> pa.Schema:
    missing = [c for c in FIXED_COLUMNS if c not in names]
    if missing:
        raise _MissingColumns(", ".join(missing))
    return arrow_schema(_dimensions(names))


def _jsonl_table(data: bytes) -> pa.Table | None:
    rows = [orjson.loads(line) for line in data.splitlines() if line.strip()]
    if not rows:
        return None
    schema = _schema_of(list(rows[0]))
    for row in rows:
        for name in DOUBLE_FIELDS:
            if isinstance(row.get(name), str):
                row[name] = NON_FINITE.get(row[name], row[name])
    return pa.Table.from_pylist(rows, schema=schema)


def _avro_table(data: bytes) -> pa.Table | None:
    reader = fastavro.reader(io.BytesIO(data))
    schema = _schema_of([f["name"] for f in reader.writer_schema["fields"]])
    rows = list(reader)
    return pa.Table.from_pylist(rows, schema=schema) if rows else None


def read_file(path: str, data: bytes) -> pa.Table | None:
    """One file's rows with the published schema's types (None when it holds none)."""
    missing = ""
    try:
        if path.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(data))
            missing = ", ".join(c for c in FIXED_COLUMNS if c not in table.column_names)
        elif path.endswith(".avro"):
            table = _avro_table(data)
        else:
            table = _jsonl_table(data)
    except _MissingColumns as err:
        missing = str(err)
    except (ValueError, TypeError, KeyError, pa.ArrowException) as err:
        raise QueryError(
            f"{path} is not a readable aggregate file ({type(err).__name__}: {err}); move it out of the table "
            "root, or into a directory whose name starts with _ so that it is passed over."
        ) from None
    if missing:
        raise QueryError(
            f"{path} is not an aggregate file: it has no {missing} column; move it out of the "
            "table root, or into a directory whose name starts with _ so that it is passed over."
        )
    return table


def with_partitions(table: pa.Table, raw: dict[str, str]) -> pa.Table:
    """`table` plus its decoded partition values as columns; a column the rows already have (region)
    keeps the rows' value, which is the full one even where the path holds a cut encoding."""
    for name, encoded in raw.items():
        if name in table.column_names:
            continue
        value = None if is_cut(encoded) else decode(encoded)
        table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
    return table


def _fetch(fs: Any, paths: list[str]) -> dict[str, bytes]:  # noqa: ANN401 - an fsspec filesystem
    data: dict[str, bytes] = {}
    for first in range(0, len(paths), FETCH_BATCH):
        batch = paths[first : first + FETCH_BATCH]
        fetched = fs.cat(batch, on_error="raise")
        # fsspec returns a dict for several paths, the bytes alone for one.
        data.update(fetched if isinstance(fetched, dict) else {batch[0]: fetched})
    return data


def _list_and_fetch(fs: Any, root: str) -> tuple[Listing, dict[str, bytes]]:  # noqa: ANN401 - an fsspec filesystem
    """The listing and every listed file's bytes. A file deleted between the listing and its read
    (a compaction that merged it meanwhile) makes one fresh listing: the merged file is complete
    before the originals go, so the second listing reads every group once."""
    listing = list_files(fs, root)
    try:
        return listing, _fetch(fs, [path for path, _ in listing.files])
    except FileNotFoundError:
        LOG.info("a file vanished while reading %s (compacted meanwhile?); listing again", root)
        fs.invalidate_cache()
        listing = list_files(fs, root)
        return listing, _fetch(fs, [path for path, _ in listing.files])


def load_aggregates(uri: str, options: PipelineOptions) -> tuple[pa.Table, list[str]]:
    """(every aggregate row under `uri` with dt/hour/region columns, the dimension columns)."""
    try:
        sink = parse_sink(uri, "OUTPUT_URI")
    except UriError as err:
        raise QueryError(str(err)) from None
    shown = redact_uri(uri)
    fs, root = filesystem(sink, options)
    try:
        listing, data = _list_and_fetch(fs, root)
    except (OSError, ValueError) as err:
        raise QueryError(
            f"cannot read {shown}: {type(err).__name__}: {err}. Check that the bucket or directory exists and "
            "that the store's endpoint and credentials are set as for the pipeline's --output (docs/query.md)."
        ) from err
    tables = []
    for path, raw in listing.files:
        table = read_file(path, data[path])
        if table is not None and table.num_rows:
            tables.append(with_partitions(table, raw))
    if not listing.files and not listing.skipped:
        raise QueryError(
            f"nothing under {shown}: no such directory or prefix, or it is empty. Give the --output of a finished "
            "`python -m pipelines.run` (the table root), and check the path."
        )
    if not tables:
        passed = (
            f" ({listing.skipped} other files passed over: names starting with _ or ., or outside the "
            "dt=/hour=/region= layout)"
            if listing.skipped
            else ""
        )
        raise QueryError(
            f"no aggregate rows under {shown}: found {len(listing.files)} .jsonl/.parquet/.avro files in the "
            f"dt=.../hour=.../ layout{passed}. Give the --output of a finished `python -m pipelines.run` "
            "(the table root, not a partition or the dead letters)."
        )
    LOG.info("read %d rows from %d files under %s", sum(t.num_rows for t in tables), len(tables), shown)
    combined = pa.concat_tables(tables, promote_options="permissive")
    return combined, _dimensions([c for c in combined.column_names if c not in ("dt", "hour")])
