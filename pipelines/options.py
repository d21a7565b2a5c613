"""Command-line options of the analytics pipeline, as a Beam PipelineOptions subclass.

Every Beam option (--runner, --streaming, --direct_num_workers, ...) works beside these.
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

DEFAULT_SOURCE = "synthetic://?events=100000&keys=50&seed=42"
DEFAULT_OUTPUT = "./output"
DEFAULT_FILE_ROLL_S = 60


class ConfigError(ValueError):
    """An option value that cannot work; the message names the option and the fix."""


class AnalyticsOptions(PipelineOptions):
    """Options of `python -m pipelines.run`; `pipelines.config.build_config` checks their values."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("analytics")
        group.add_argument(
            "--source",
            default=DEFAULT_SOURCE,
            help=(
                "Where events come from. synthetic://?events=N&keys=K&seed=S&rate=R&span=SECONDS "
                "(seeded generator with out-of-order, late and malformed events; rate=R paces "
                "R events/s with wall-clock event times), file:///path/or/glob (NDJSON lines or "
                "Avro container files), kinesis://STREAM?region=R, "
                "eventhubs://NAMESPACE/HUB?consumer_group=G, pubsub://projects/P/subscriptions/S. "
                f"Default: {DEFAULT_SOURCE}"
            ),
        )
        group.add_argument(
            "--input_format",
            default="json",
            choices=("json", "avro"),
            help="Record encoding: json (one object per line or message) or avro (container files, or "
            "schemaless records decoded with --avro_schema). Default: json",
        )
        group.add_argument(
            "--avro_schema",
            default=None,
            help="Path to the writer's Avro schema (.avsc), needed for schemaless Avro records.",
        )
        group.add_argument(
            "--event_time_field",
            default="event_time",
            help="Field holding the event time: epoch millis or ISO-8601. Default: event_time",
        )
        group.add_argument(
            "--event_time_unit",
            default="ms",
            choices=("ms", "s", "us", "ns"),
            help="Unit of numeric event times: ms (epoch milliseconds), s, us or ns. A number that is "
            "implausible in this unit goes to the dead letters with a reason naming the unit it looks "
            "like. ISO-8601 strings are read whatever the unit. Default: ms",
        )
        group.add_argument(
            "--id_field",
            default="event_id",
            help="Field holding the event id, counted by distinct_ids. Default: event_id",
        )
        group.add_argument(
            "--value_field",
            default="value",
            help="Numeric field aggregated into count/sum/min/max/mean/quantiles. Default: value",
        )
        group.add_argument(
            "--dimensions",
            default="region,key",
            help="Comma-separated fields to group by within each window. Default: region,key",
        )
        group.add_argument(
            "--window",
            default="fixed:60",
            help="Event-time windows, sizes in seconds: fixed:SIZE, sliding:SIZE,PERIOD or session:GAP. "
            "Default: fixed:60",
        )
        group.add_argument(
            "--allowed_lateness",
            type=float,
            default=0.0,
            help="Seconds after a window closes during which late events still update it (each late "
            "event yields a LATE pane); later events are dropped by the runner. Default: 0",
        )
        group.add_argument(
            "--early_firing",
            type=float,
            default=None,
            help="Emit accumulating EARLY panes every this many seconds of processing time before the "
            "watermark closes a window; implies the streaming path. Fractions of a second (0.5) need "
            "--runner PrismRunner; other runners count whole seconds. Default: off",
        )
        group.add_argument(
            "--window_shards",
            type=int,
            default=4,
            help="Split each window's groups into this many shards, each combined under its own key "
            "and written to its own files: more parallelism for windows with many groups, and at most this "
            "many files per partition directory (and --file_roll, when streaming). Default: 4",
        )
        group.add_argument(
            "--file_roll",
            type=int,
            default=DEFAULT_FILE_ROLL_S,
            help="Streaming: gather the panes that fire within this many whole seconds of processing time "
            "into the same files, at most --window_shards files per partition directory (dt/hour/region) "
            "and roll, as a write window does; longer rolls mean fewer, larger files and aggregates that "
            "land later. Bounded runs write each partition in at most --window_shards files whatever "
            f"this is. Default: {DEFAULT_FILE_ROLL_S}",
        )
        group.add_argument(
            "--output",
            default=DEFAULT_OUTPUT,
            help="Where aggregates go: a directory or file:///dir, s3://bucket/prefix, gs://bucket/prefix, "
            f"azfs://account/container/prefix. Default: {DEFAULT_OUTPUT}",
        )
        group.add_argument(
            "--output_format",
            default="jsonl",
            choices=("jsonl", "parquet", "avro"),
            help="File format of the aggregates. Default: jsonl",
        )
        group.add_argument(
            "--dead_letter",
            default=None,
            help="Where undecodable records go, one JSON line each with error, payload and source. "
            "Default: beside the output, <output>_dead_letter (./output -> ./output_dead_letter, "
            "s3://b/p/agg -> s3://b/p/agg_dead_letter); for an output at a bucket or container root, "
            "<output>/_dead_letter. Inside the output, files are named _part-<digest>.ndjson, which "
            "table readers skip.",
        )
        group.add_argument(
            "--max_records",
            type=int,
            default=None,
            help="Bounded read: stop each stream source after this many records in total.",
        )
        group.add_argument(
            "--max_read_time",
            type=float,
            default=None,
            help="Bounded read: stop reading stream sources after this many seconds.",
        )
        group.add_argument(
            "--dedupe_by",
            default=None,
            help="Count each value of this field (e.g. event_id) once per window: records delivered again "
            "(redelivery, re-puts) are dropped before decoding. Default: off",
        )
        group.add_argument(
            "--dedupe_max_ids",
            type=int,
            default=1_000_000,
            help="With --dedupe_by: ids remembered per dedupe shard (4) and window, about 100 bytes each; "
            "past this, newer ids of that window are not remembered (counted and logged), so their "
            "duplicates may be counted again, but nothing is dropped. Default: 1000000",
        )
        group.add_argument(
            "--resume",
            action="store_true",
            default=False,
            help="Kinesis and Event Hubs on the DirectRunner: start each shard/partition after the position "
            "stored by the last successful run in <output>/_positions/, and store this run's positions when "
            "it finishes (see docs/reliability.md). Needs a bounded read: --max_records, --max_read_time, "
            "--kinesis_read_to_latest or --eventhubs_read_to_latest.",
        )
        group.add_argument(
            "--jurisdiction",
            default=None,
            help="Refuse, before starting, any source or sink outside this jurisdiction of "
            "infra/regions.json (us, eu, uk, sg, jp, au).",
        )
        group.add_argument(
            "--sink_region",
            default=None,
            help="Region of the output bucket/container, when it cannot be looked up.",
        )


# Connector and sink option groups live beside their code, in modules that import only Beam,
# so that --help lists them even where a cloud SDK is not installed.
EXTRA_OPTION_MODULES = (
    "pipelines.adapters.kinesis_options",
    "pipelines.adapters.eventhubs_options",
    "pipelines.adapters.pubsub_options",
    "pipelines.sink_options",
    "pipelines.progress",
)


def all_option_classes() -> list[type[PipelineOptions]]:
    """AnalyticsOptions plus every connector/sink options class present in this install."""
    import importlib

    classes: list[type[PipelineOptions]] = [AnalyticsOptions]
    for name in EXTRA_OPTION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        classes += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, PipelineOptions) and obj.__module__ == name
        ]
    return classes


def add_all_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds every analytics, connector and sink option to `parser` (for --help and checks)."""
    for cls in all_option_classes():
        cls._add_argparse_args(parser)
