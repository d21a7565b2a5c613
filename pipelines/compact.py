"""CLI: `python -m pipelines.compact OUTPUT_URI [--older_than HOURS] [--target_mib MIB] [--dry_run]`.

Merges the files of each closed partition (`dt=.../hour=...[/region=...]` whose hour ended more
than --older_than hours ago) of a pipeline's --output into one file, or several deterministic
parts above --target_mib, in the partition's own format (transforms/compaction.py). Per partition:

1. write the plan `_compaction.json` (inputs with sizes, outputs);
2. write each merged file whole (a temporary name renamed, or one committed upload);
3. delete the inputs, then the plan.

Between 2 and 3 the old and the new files both hold every row: a reader sees each group, never
none; a `latest` view that keeps one row per group (row_number / arg_max) shows no double, since
the merged rows are the originals. A run that finds a plan finishes it (every output there:
delete the inputs) or undoes it (remove the partial outputs), so a killed run is completed by the
next one. A partition that is one file, or exactly one set of merged parts, is left as it is, so
a second run changes nothing. Partitions that are not closed, files and directories starting with
`_` or `.` (dead letters, a writer's temporary files) are never touched.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Callable, Sequence, TextIO

from apache_beam.options.pipeline_options import AzureOptions, PipelineOptions, S3Options

from io_connectors.uri import UriError, parse_sink, redact_text, redact_uri
from pipelines.compact_store import StoreError, TableStore
from pipelines.options import ConfigError
from pipelines.sink_options import check_sink_options
from pipelines.table_cli import OUTPUT_FORMS, table_parser
from transforms.compaction import PLAN_NAME, CompactionError, Partition, Plan, Rows, format_of, partitions
from transforms.formats import MIME_TYPES
from transforms.sinks import SinkWriteError

DEFAULT_OLDER_THAN_H = 2.0
DEFAULT_TARGET_MIB = 128.0
MIN_TARGET_MIB = 1.0
MIB = 1024 * 1024

DESCRIPTION = """Merge the files of closed partitions of a pipeline's output into one file per partition
(several deterministic parts above --target_mib), in the partition's own format (jsonl, parquet or
avro). A partition dt=.../hour=...[/region=...] is closed when its hour ended more than --older_than
hours ago. Atomic and idempotent: each merged file is complete before the old files are deleted,
merged rows are the originals byte for byte in value, a second run changes nothing, and a run that
was stopped is completed by the next one. Files and directories whose names start with _ or . are
never touched. Stores are reached as the pipeline's sinks reach them: S3 through
--s3_endpoint_url/--s3_region_name or boto3's environment (AWS_ENDPOINT_URL, AWS_REGION, the
credential chain), GCS through default credentials or STORAGE_EMULATOR_HOST, Azure Blob through
AZURE_STORAGE_CONNECTION_STRING or --blob_service_endpoint with Azure AD. Progress goes to stderr,
the summary to stdout. See docs/storage.md (Compaction)."""

EPILOG = """examples:
  python -m pipelines.compact ./output --dry_run
  python -m pipelines.compact s3://analytics-eu/aggregates --older_than 6
  python -m pipelines.compact gs://analytics-eu/aggregates --target_mib 256

exit status: 0 done (or nothing to do), 1 some partitions failed (the others are done; rerun),
2 a bad argument or an unreachable output."""


class CompactError(ValueError):
    """The command cannot run (a bad option, an unreachable or empty output); the message says what to do."""


@dataclass
class Summary:
    """What a run did; bytes and files count the partitions compacted (or, --dry_run, to compact)."""

    closed: int = 0
    open: int = 0
    compacted: int = 0
    already: int = 0
    finished: int = 0  # plans of an interrupted run completed
    undone: int = 0  # plans of an interrupted run whose partial outputs were removed
    files_in: int = 0
    files_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def text(self, dry_run: bool) -> str:
        verb = "to compact" if dry_run else "compacted"
        lines = [
            f"partitions        {self.closed:>8,} closed: {self.compacted:,} {verb}, {self.already:,} already compact, "
            f"{len(self.failed):,} failed; {self.open:,} not closed, left as they are",
        ]
        if self.compacted:
            lines += [
                f"files             {self.files_in:>8,} -> {self.files_out:,}",
                f"bytes             {_size(self.bytes_in):>8} -> {_size(self.bytes_out)}",
            ]
        if self.finished or self.undone:
            lines.append(
                f"interrupted runs  {self.finished:>8,} completed, {self.undone:,} partial outputs removed and redone"
            )
        lines += [f"failed            {path}: {why}" for path, why in sorted(self.failed.items())]
        if dry_run:
            lines.append("(dry run: nothing was written or deleted)")
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@dataclass
class _Outcome:
    action: str  # "compacted", "already compact"
    files_in: int = 0
    files_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    recovery: str | None = None  # "completed" / "undone"


def _recover(store: TableStore, partition: Partition, dry_run: bool) -> tuple[dict[str, int], str | None]:
    """Finishes or undoes the plan an interrupted run left; returns the data files after that."""
    files = dict(partition.files)
    if not dry_run and partition.own_temporary:
        store.delete([f"{partition.path}/{name}" for name in partition.own_temporary])
    if not partition.plan:
        return files, None
    plan_path = f"{partition.path}/{PLAN_NAME}"
    plan = Plan.from_bytes(store.read(plan_path), store.path(plan_path))
    if all(name in files for name in plan.outputs):
        # Every output is complete: the inputs it replaced go.
        gone, recovery = plan.leftover_inputs(files), "completed"
    else:
        # Stopped while writing: the inputs all remain, the outputs written so far go.
        gone, recovery = sorted(n for n in plan.outputs if n in files and n not in plan.inputs), "undone"
    if not dry_run:
        store.delete([f"{partition.path}/{name}" for name in gone])
        store.delete([plan_path])
    for name in gone:
        files.pop(name)
    return files, recovery


def compact_partition(
    store: TableStore,
    partition: Partition,
    target_bytes: int,
    dry_run: bool = False,
    after_write: Callable[[str], None] | None = None,
) -> _Outcome:
    """Compacts one closed partition (see the module); `after_write(path)` runs between the writes
    and the deletes (tests stop a run there)."""
    files, recovery = _recover(store, partition, dry_run)
    current = Partition(partition.path, files)
    if current.compact():
        return _Outcome("already compact", recovery=recovery)
    rows = Rows(format_of(list(files), partition.path))
    for name in sorted(files):
        rows.add(f"{store.path(partition.path)}/{name}", store.read(f"{partition.path}/{name}"))
    outputs = rows.merged(target_bytes)
    outcome = _Outcome("compacted", len(files), len(outputs), current.bytes, sum(len(d) for _, d in outputs), recovery)
    if dry_run:
        return outcome
    plan = Plan(files, tuple(name for name, _ in outputs))
    store.write(f"{partition.path}/{PLAN_NAME}", plan.to_bytes(), "application/json")
    for name, data in outputs:
        store.write(f"{partition.path}/{name}", data, MIME_TYPES[rows.output_format])
    if after_write is not None:
        after_write(partition.path)
    store.delete([f"{partition.path}/{name}" for name in sorted(files) if name not in plan.outputs])
    store.delete([f"{partition.path}/{PLAN_NAME}"])
    return outcome


def compact(
    uri: str,
    options: PipelineOptions,
    older_than: timedelta = timedelta(hours=DEFAULT_OLDER_THAN_H),
    target_bytes: int = int(DEFAULT_TARGET_MIB * MIB),
    dry_run: bool = False,
    now: datetime | None = None,
    after_write: Callable[[str], None] | None = None,
    progress: TextIO | None = None,
) -> Summary:
    """Compacts every closed partition under `uri` (a pipeline's --output); see the module."""
    try:
        sink = parse_sink(uri, "OUTPUT_URI")
    except UriError as err:
        raise CompactError(str(err)) from None
    shown = redact_uri(uri)
    store = TableStore(sink, options)
    if not store.exists():
        raise CompactError(f"{shown} is not a directory; give the --output of a pipeline run.")
    try:
        listing = store.list()
    except StoreError as err:
        raise CompactError(
            f"cannot list {shown}: {type(err).__name__}: {err}. Check that the bucket or directory exists and that "
            "the store's endpoint and credentials are set as for the pipeline's --output (docs/storage.md)."
        ) from err
    found = partitions(listing)
    if not found:
        raise CompactError(
            f"no dt=.../hour=... partition directories under {shown} ({len(listing):,} files found); give the "
            "--output of a pipeline run (the table root, not a partition or the dead letters)."
        )
    now = now or datetime.now(UTC)
    closed = sorted(path for path, p in found.items() if p.closed(now, older_than))
    summary = Summary(closed=len(closed), open=len(found) - len(closed))
    done_bytes, total_bytes = 0, sum(found[p].bytes for p in closed)
    for index, path in enumerate(closed, 1):
        partition = found[path]
        try:
            outcome = compact_partition(store, partition, target_bytes, dry_run, after_write)
        except (CompactionError, StoreError, SinkWriteError) as err:
            summary.failed[path] = str(err)
            _say(
                progress, f"[{index}/{len(closed)}] {path}: FAILED (a rerun completes or undoes what was begun): {err}"
            )
            continue
        done_bytes += partition.bytes
        summary.finished += outcome.recovery == "completed"
        summary.undone += outcome.recovery == "undone"
        note = f" (an interrupted run's plan {outcome.recovery})" if outcome.recovery else ""
        if outcome.action == "compacted":
            summary.compacted += 1
            summary.files_in += outcome.files_in
            summary.files_out += outcome.files_out
            summary.bytes_in += outcome.bytes_in
            summary.bytes_out += outcome.bytes_out
            what = (
                f"{outcome.files_in} files, {_size(outcome.bytes_in)} -> {outcome.files_out} "
                f"file{'s' * (outcome.files_out > 1)}, {_size(outcome.bytes_out)}"
            )
        else:
            summary.already += 1
            what = "already compact"
        _say(
            progress,
            f"[{index}/{len(closed)}] {path}: {what}{note}; {_size(done_bytes)} of {_size(total_bytes)} done",
        )
    return summary


def _say(stream: TextIO | None, line: str) -> None:
    if stream is not None:
        print(f"compact: {line}", file=stream, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = table_parser(
        "python -m pipelines.compact", DESCRIPTION, EPILOG,
        "The table to compact: the --output of a pipeline run (its root, not a partition), as "
        f"{OUTPUT_FORMS}.",
    )
    parser.add_argument(
        "--older_than",
        type=float,
        default=DEFAULT_OLDER_THAN_H,
        metavar="HOURS",
        help="Compact only partitions whose hour ended more than this many hours ago (UTC). Set it above the "
        "running job's --allowed_lateness plus its watermark delay and --file_roll, so that the job no longer "
        f"writes there. Default: {DEFAULT_OLDER_THAN_H:g}",
    )
    parser.add_argument(
        "--target_mib",
        type=float,
        default=DEFAULT_TARGET_MIB,
        metavar="MIB",
        help="Largest merged file, in MiB: a partition above it is split into the fewest equal parts under it, "
        f"part-compacted-<digest>-<i>of<n>. A partition is merged in memory. At least {MIN_TARGET_MIB:g}. "
        f"Default: {DEFAULT_TARGET_MIB:g}",
    )
    parser.add_argument(
        "--dry_run",
        action="store_true",
        help="Read and merge as a run would, report what would change, and write or delete nothing.",
    )
    # Beam's own store options, so the command reaches the store exactly as the pipeline's sinks do.
    S3Options._add_argparse_args(parser)  # noqa: SLF001 - Beam's option definitions, reused as they are
    AzureOptions._add_argparse_args(parser)  # noqa: SLF001
    return parser


OWN_ARGUMENTS = frozenset({"output_uri", "older_than", "target_mib", "dry_run"})


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.older_than >= 0:
        parser.error(f"--older_than must be a number of hours >= 0, not {args.older_than}")
    if not args.target_mib >= MIN_TARGET_MIB:
        # Below a file's fixed size (a Parquet footer is a few KiB) every row would get a file of its own.
        parser.error(
            f"--target_mib must be a size in MiB of at least {MIN_TARGET_MIB:g}, e.g. 128, not {args.target_mib}"
        )
    given = {k: v for k, v in vars(args).items() if k not in OWN_ARGUMENTS and v is not None}
    options = PipelineOptions.from_dictionary(given)
    try:
        check_sink_options(options)
        summary = compact(
            args.output_uri,
            options,
            older_than=timedelta(hours=args.older_than),
            target_bytes=int(args.target_mib * MIB),
            dry_run=args.dry_run,
            progress=sys.stderr,
        )
    except (CompactError, ConfigError) as err:
        print(f"error: {redact_text(str(err))}", file=sys.stderr)
        return 2
    print(summary.text(args.dry_run))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
