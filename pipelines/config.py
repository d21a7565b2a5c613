"""Turns parsed options into a validated JobConfig, or one readable sentence of what is wrong."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from io_connectors.avro_safety import schema_problem
from io_connectors.positions import unbounded_message
from io_connectors.uri import SinkSpec, SourceSpec, UriError, parse_sink, parse_source
from pipelines.adapters import check_source
from pipelines.adapters.eventhubs_options import EventHubsOptions
from pipelines.adapters.kinesis_options import KinesisOptions
from pipelines.adapters.pubsub_options import PubSubOptions
from pipelines.options import DEFAULT_FILE_ROLL_S, AnalyticsOptions, ConfigError
from pipelines.sink_options import SinkOptions, check_local_sink, check_sink_options
from pipelines.sovereignty import SovereigntyError, enforce_jurisdiction
from runners import runner_key
from transforms.columnar import INTERNAL_COLUMNS
from transforms.decode import EventSchema
from transforms.windowing import MAX_WINDOW_S, WindowSpec, WindowSpecError, parse_window


@dataclass(frozen=True)
class JobConfig:
    source: SourceSpec
    input_format: str
    avro_schema: dict | None
    schema: EventSchema
    window: WindowSpec
    allowed_lateness_s: float
    early_firing_s: float | None
    window_shards: int
    output: SinkSpec
    output_format: str
    dead_letter: SinkSpec
    streaming: bool
    dedupe_by: str | None = None
    dedupe_max_ids: int = 1_000_000
    resume: bool = False
    # Streaming: seconds of processing time whose panes share files; None: one roll per run.
    file_roll_s: int | None = DEFAULT_FILE_ROLL_S
    dead_letter_in_output: bool = False

    @property
    def streaming_path(self) -> bool:
        """Use Beam windows and triggers (needed for unbounded input or early panes); otherwise
        the bounded fast path keys by window id in the global window, with identical results."""
        return self.streaming or self.early_firing_s is not None


def _load_avro_schema(path: str | None) -> dict | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            schema = json.load(handle)
    except OSError as err:
        raise ConfigError(f"--avro_schema {path!r} cannot be read: {err.strerror}.") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"--avro_schema {path!r} is not valid JSON ({err}); give an .avsc schema file.") from None
    except RecursionError:
        raise ConfigError(f"--avro_schema {path!r} nests too deep to read; flatten the schema.") from None
    # A schema that lets a few bytes claim billions of items (or nest without end) is refused
    # before any work, not record by record.
    problem = schema_problem(schema)
    if problem is not None:
        raise ConfigError(f"--avro_schema {path!r} is refused: {problem}.")
    return schema


# Sources with a position store for --resume, and the option that bounds a read at the stream's end.
RESUMABLE_SOURCES = {"kinesis": "--kinesis_read_to_latest", "eventhubs": "--eventhubs_read_to_latest"}
# Stream sources and the option of each that ends a read once the stream is drained.
DRAINED_BOUNDS = {**RESUMABLE_SOURCES, "pubsub": "--pubsub_stop_when_idle"}
# Column names the Hive partition directories give every reader of the output.
PARTITION_COLUMNS = frozenset({"dt", "hour"})
# Output field names taken by the aggregate record.
OUTPUT_FIELDS = frozenset(
    {"window_start", "window_end", "count", "sum", "min", "max", "mean", "p50", "p95", "p99", "distinct_ids", "pane",
     "pane_index"}
)
# Avro field names: the specification's rule, which stricter (Java) readers enforce.
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_dimensions(raw: str, output_format: str) -> tuple[str, ...]:
    dimensions = tuple(d.strip() for d in raw.split(",") if d.strip())
    if not dimensions:
        raise ConfigError("--dimensions is empty; name at least one field to group by, e.g. region,key.")
    if len(set(dimensions)) != len(dimensions):
        raise ConfigError(f"--dimensions {raw!r} repeats a field; name each field once.")
    clash = sorted(OUTPUT_FIELDS.intersection(dimensions))
    if clash:
        raise ConfigError(f"--dimensions uses {', '.join(clash)}, which are output fields; rename the dimension.")
    clash = sorted(PARTITION_COLUMNS.intersection(dimensions))
    if clash:
        raise ConfigError(
            f"--dimensions uses {', '.join(clash)}, which the output's partition directories (dt=.../hour=...) "
            "add as columns for Athena, BigQuery, Synapse and pipelines.query; rename the field in the input."
        )
    clash = sorted(INTERNAL_COLUMNS.intersection(dimensions))
    if clash:
        raise ConfigError(
            f"--dimensions uses {', '.join(clash)}, which the aggregation uses for its own columns; "
            "rename the field in the input."
        )
    if output_format == "avro":
        bad = [d for d in dimensions if not AVRO_NAME.fullmatch(d)]
        if bad:
            raise ConfigError(
                f"--dimensions {', '.join(map(repr, bad))}: Avro field names are letters, digits and _, not "
                "starting with a digit; use --output_format jsonl or parquet, or rename the field."
            )
    return dimensions


def _check_bounded(options: PipelineOptions, source: SourceSpec, streaming_path: bool) -> None:
    """A stream read with no bound never ends: the bounded path (no --streaming) would wait forever."""
    if source.scheme not in DRAINED_BOUNDS or streaming_path:
        return
    opts = options.view_as(AnalyticsOptions)
    drained = {
        "kinesis": options.view_as(KinesisOptions).kinesis_read_to_latest,
        "eventhubs": options.view_as(EventHubsOptions).eventhubs_read_to_latest,
        "pubsub": options.view_as(PubSubOptions).pubsub_stop_when_idle,
    }[source.scheme]
    if opts.max_records is None and opts.max_read_time is None and not drained:
        raise ConfigError(
            f"--source {source.shown!r} is a stream with no end, which a batch run (no --streaming) would wait "
            f"for forever: bound the read with --max_records, --max_read_time or {DRAINED_BOUNDS[source.scheme]}, "
            "or add --streaming (locally a streaming read writes its windows when the read ends; see README)."
        )


def _check_resume(options: PipelineOptions, source: SourceSpec) -> None:
    """--resume needs a source with a position store and a read that finishes (to commit)."""
    if source.scheme not in RESUMABLE_SOURCES:
        raise ConfigError(
            f"--resume keeps positions for kinesis:// and eventhubs:// sources only, not {source.scheme}://; "
            "drop --resume (Pub/Sub redelivers unacknowledged messages; files and synthetic input are read "
            "whole by every run)."
        )
    opts = options.view_as(AnalyticsOptions)
    if source.scheme == "kinesis":
        read_to_latest = options.view_as(KinesisOptions).kinesis_read_to_latest
    else:
        read_to_latest = options.view_as(EventHubsOptions).eventhubs_read_to_latest
    if not (opts.max_records or opts.max_read_time or read_to_latest):
        raise ConfigError(unbounded_message(RESUMABLE_SOURCES[source.scheme]))
    if options.view_as(DirectOptions).direct_running_mode == "multi_processing":
        # The reads would run in worker processes, whose claimed positions never reach the
        # launching process that commits the store: every run would start over.
        raise ConfigError(
            "--resume needs --direct_running_mode=in_memory (the default): with multi_processing the "
            "readers' positions stay in the worker processes and are never stored."
        )


def _is_root(sink: SinkSpec) -> bool:
    """A bucket or container root (or the local filesystem's), which has no sibling prefix."""
    location = sink.path.rstrip("/").split("://", 1)[-1] if sink.scheme != "file" else sink.path.rstrip("/")
    segments = [s for s in location.split("/") if s]
    return len(segments) <= (2 if sink.scheme == "azfs" else 1 if sink.scheme in ("s3", "gs") else 0)


def default_dead_letter(output: SinkSpec) -> SinkSpec:
    """`<output>_dead_letter`, beside the aggregates' table so that no reader of the table meets
    them; at a bucket or container root, where nothing is beside, `<output>/_dead_letter`."""
    path = output.path.rstrip("/")
    if _is_root(output):
        return SinkSpec(output.scheme, f"{path}/_dead_letter")
    return SinkSpec(output.scheme, f"{path}_dead_letter")


def inside(sink: SinkSpec, root: SinkSpec) -> bool:
    """Whether `sink` is `root` or lies under it (local paths compared after resolving links)."""
    if sink.scheme != root.scheme:
        return False
    if sink.scheme == "file":
        path, base = os.path.realpath(sink.path), os.path.realpath(root.path)
        return os.path.commonpath([path, base]) == base
    path, base = sink.path.rstrip("/"), root.path.rstrip("/")
    return path == base or path.startswith(base + "/")


def _check_early_firing(options: PipelineOptions, seconds: float) -> None:
    """Positive, at most MAX_WINDOW_S, and whole seconds except where the runner counts milliseconds."""
    if not (math.isfinite(seconds) and 0.001 <= seconds <= MAX_WINDOW_S):
        raise ConfigError(
            f"--early_firing {seconds:g} must be a positive number of seconds up to {MAX_WINDOW_S} (366 days), "
            "at least 0.001."
        )
    if seconds != int(seconds) and runner_key(options) not in MILLISECOND_TRIGGER_RUNNERS:
        # The DirectRunner rebuilds triggers in Python, which reads the delay back in whole seconds
        # (0.5 would become 0: a pane per element); other runners are not verified here.
        raise ConfigError(
            f"--early_firing {seconds:g}: fractions of a second need --runner PrismRunner, whose triggers count "
            f"milliseconds; --runner {options.view_as(StandardOptions).runner or 'DirectRunner'} counts whole "
            "seconds, so give a whole number."
        )


# Runners (profile keys) that evaluate a processing-time trigger's delay in milliseconds.
MILLISECOND_TRIGGER_RUNNERS = ("prism",)


def build_config(options: PipelineOptions) -> JobConfig:
    """Validate every analytics option; raises ConfigError with one clear sentence."""
    opts = options.view_as(AnalyticsOptions)
    try:
        # Secrets on the command line first: whatever else is wrong, that must be said.
        check_sink_options(options)
        source = parse_source(opts.source)
        check_source(source)
        output = parse_sink(opts.output, "--output")
        dead_letter = parse_sink(opts.dead_letter, "--dead_letter") if opts.dead_letter else default_dead_letter(output)
        window = parse_window(opts.window)
        # Local sinks must be writable now: finding out after the read would lose the work.
        # Object stores are checked by their first write (and by --jurisdiction's look-ups).
        for option, sink in (("--output", output), ("--dead_letter", dead_letter)):
            if sink.scheme == "file":
                check_local_sink(sink.path, option)
    except (UriError, WindowSpecError) as err:
        raise ConfigError(str(err)) from None
    dimensions = _check_dimensions(opts.dimensions, opts.output_format)
    for option, name in (("--event_time_field", opts.event_time_field), ("--value_field", opts.value_field)):
        if not name.strip():
            raise ConfigError(f"{option} is empty; name the field of each event that holds it.")
    if not math.isfinite(opts.allowed_lateness):
        raise ConfigError(f"--allowed_lateness {opts.allowed_lateness} is not a finite number; give 0 or more seconds.")
    if opts.max_read_time is not None and not math.isfinite(opts.max_read_time):
        raise ConfigError(f"--max_read_time {opts.max_read_time} is not a finite number; give a number of seconds.")
    if opts.allowed_lateness < 0:
        raise ConfigError(f"--allowed_lateness {opts.allowed_lateness} is negative; give 0 or more seconds.")
    if opts.allowed_lateness > MAX_WINDOW_S:
        raise ConfigError(
            f"--allowed_lateness {opts.allowed_lateness:g} is over the limit of {MAX_WINDOW_S} s (366 days), "
            "the state a window would be kept for; give fewer seconds."
        )
    if opts.early_firing is not None:
        _check_early_firing(options, opts.early_firing)
    if opts.window_shards < 1:
        raise ConfigError(f"--window_shards {opts.window_shards} must be at least 1.")
    if not 0 < opts.file_roll <= MAX_WINDOW_S:
        raise ConfigError(
            f"--file_roll {opts.file_roll} must be a positive number of seconds up to {MAX_WINDOW_S} (366 days)."
        )
    if opts.max_records is not None and opts.max_records <= 0:
        raise ConfigError(f"--max_records {opts.max_records} must be positive.")
    if opts.max_read_time is not None and opts.max_read_time <= 0:
        raise ConfigError(f"--max_read_time {opts.max_read_time} must be a positive number of seconds.")
    if opts.dedupe_max_ids < 1:
        raise ConfigError(f"--dedupe_max_ids {opts.dedupe_max_ids} must be at least 1.")
    if opts.resume:
        _check_resume(options, source)
    streaming = bool(options.view_as(StandardOptions).streaming)
    _check_bounded(options, source, streaming or opts.early_firing is not None)
    avro_schema = _load_avro_schema(opts.avro_schema)
    try:
        # Refuse, before anything starts, a source or sink outside the jurisdiction (--jurisdiction).
        enforce_jurisdiction(
            opts.jurisdiction,
            source,
            [("sink", output.path), ("dead-letter sink", dead_letter.path)],
            options,
            sink_region=opts.sink_region,
            source_region=options.view_as(SinkOptions).source_region,
        )
    except SovereigntyError as err:
        raise ConfigError(str(err)) from None
    return JobConfig(
        source=source,
        input_format=opts.input_format,
        avro_schema=avro_schema,
        schema=EventSchema(
            opts.event_time_field, opts.id_field, opts.value_field, dimensions, time_unit=opts.event_time_unit
        ),
        window=window,
        allowed_lateness_s=opts.allowed_lateness,
        early_firing_s=opts.early_firing,
        window_shards=opts.window_shards,
        output=output,
        output_format=opts.output_format,
        dead_letter=dead_letter,
        streaming=streaming,
        dedupe_by=opts.dedupe_by or None,
        dedupe_max_ids=opts.dedupe_max_ids,
        resume=bool(opts.resume),
        file_roll_s=opts.file_roll,
        dead_letter_in_output=inside(dead_letter, output),
    )
