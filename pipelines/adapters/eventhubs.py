"""--source eventhubs://...: the command-line options mapped onto io_connectors.eventhubs."""

from __future__ import annotations

from dataclasses import replace

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import eventhubs as connector
from io_connectors import positions
from io_connectors.after_run import AfterRun
from io_connectors.eventhubs_client import EventHubsTarget, parse_target, parse_timestamp_ms
from io_connectors.uri import SourceSpec, UriError, parse_sink
from pipelines.adapters.eventhubs_options import EventHubsOptions
from pipelines.options import AnalyticsOptions
from runners.direct import finalizes_before_writing

check_uri = connector.check_uri


def target_from_options(spec: SourceSpec, options: PipelineOptions) -> EventHubsTarget:
    """Where and how to connect: the URI plus the --kafka_bootstrap and --eventhubs_* connection options."""
    eh = options.view_as(EventHubsOptions)
    return parse_target(
        spec,
        bootstrap=eh.kafka_bootstrap,
        security_protocol=eh.eventhubs_security_protocol,
        auth=eh.eventhubs_auth,
        connection_string_env=eh.eventhubs_connection_string_env,
        connect_timeout_s=eh.eventhubs_connect_timeout,
    )


def settings_from_options(options: PipelineOptions) -> connector.ReadSettings:
    """The read's start, bounds and offset commits; consumer-group offsets wait for the run's success
    where the runner finalizes read bundles before it writes (runners.direct.finalizes_before_writing)."""
    eh = options.view_as(EventHubsOptions)
    analytics = options.view_as(AnalyticsOptions)
    timestamp = parse_timestamp_ms(eh.eventhubs_start_timestamp) if eh.eventhubs_start_timestamp else None
    settings = connector.ReadSettings(
        start_position=eh.eventhubs_start_position,
        start_timestamp_ms=timestamp,
        read_to_latest=eh.eventhubs_read_to_latest,
        max_records=analytics.max_records,
        max_read_time_s=analytics.max_read_time,
        commit_offsets=eh.eventhubs_commit_offsets,
        commit_after_run=finalizes_before_writing(options),
        max_partitions=eh.eventhubs_max_partitions,
        batch_size=eh.eventhubs_batch_size,
    )
    settings.validate()
    return settings


def source_from_uri(spec: SourceSpec, options: PipelineOptions, after_run: AfterRun) -> beam.PTransform:
    """--source eventhubs://NAMESPACE/HUB?consumer_group=G -> RawBatches. With --resume: from the offsets
    the last successful run stored, this run's claimed offsets recorded in `after_run` for its commit."""
    target = target_from_options(spec, options)
    settings = settings_from_options(options)
    analytics = options.view_as(AnalyticsOptions)
    if getattr(analytics, "resume", False):
        source = spec.uri or f"eventhubs://{target.namespace}/{target.hub}"
        try:
            store = positions.resume_store(parse_sink(analytics.output, "--output").path, source,
                                           settings.bounded, "--eventhubs_read_to_latest")
            connector.stored_offsets(store)  # a damaged store fails here, before anything is read
        except positions.PositionStoreError as err:
            raise UriError(str(err)) from None
        after_run.track(store, source)
        settings = replace(settings, position_store=store)
    return connector.ReadRawBatches(target, settings, after_run)
