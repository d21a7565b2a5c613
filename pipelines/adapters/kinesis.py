"""--source kinesis://STREAM?region=R: the --kinesis_* options, the bounded-read, event-time and
--resume options mapped onto io_connectors.kinesis.ReadFromKinesis."""

from __future__ import annotations

from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import positions
from io_connectors.after_run import AfterRun
from io_connectors.kinesis import ReadFromKinesis, check_uri
from io_connectors.timestamps import to_epoch_millis
from io_connectors.uri import SourceSpec, UriError, parse_sink
from pipelines.adapters.kinesis_options import KinesisOptions
from pipelines.options import AnalyticsOptions

__all__ = ["check_uri", "read_arguments", "source_from_uri"]


def read_arguments(spec: SourceSpec, options: PipelineOptions) -> dict[str, Any]:
    """The keyword arguments of ReadFromKinesis for `spec` under `options`; UriError naming the
    option to fix otherwise."""
    stream, region = check_uri(spec)
    kinesis = options.view_as(KinesisOptions)
    problems = kinesis.validate_kinesis()
    if problems:
        raise UriError("; ".join(problems) + ".")
    analytics = options.view_as(AnalyticsOptions)
    store = None
    if analytics.resume:
        bounded = bool(analytics.max_records or analytics.max_read_time or kinesis.kinesis_read_to_latest)
        try:
            store = positions.resume_store(parse_sink(analytics.output, "--output").path, spec.uri or stream,
                                           bounded, "--kinesis_read_to_latest")
        except positions.PositionStoreError as err:
            raise UriError(str(err)) from None
    start = kinesis.kinesis_start_timestamp
    return {
        "stream": stream,
        "region": region,
        "endpoint_url": kinesis.endpoint_url(),
        "start_position": kinesis.kinesis_start_position,
        "start_timestamp_ms": to_epoch_millis(start) if start else None,
        "max_records": analytics.max_records,
        "max_read_time_s": analytics.max_read_time,
        "read_to_latest": bool(kinesis.kinesis_read_to_latest),
        "watermark": kinesis.kinesis_watermark,
        "event_time_field": analytics.event_time_field,
        "event_time_unit": analytics.event_time_unit,
        "poll_interval_s": kinesis.kinesis_poll_interval,
        "discovery_interval_s": kinesis.kinesis_discovery_interval,
        "deaggregate": kinesis.kinesis_deaggregate != "off",
        "position_store": store,
    }


def source_from_uri(spec: SourceSpec, options: PipelineOptions, after_run: AfterRun) -> ReadFromKinesis:
    """`kinesis://STREAM?region=R` as a ReadFromKinesis; `after_run` stores its --resume positions."""
    return ReadFromKinesis(after_run=after_run, **read_arguments(spec, options))
