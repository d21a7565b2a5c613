"""--source pubsub://...: the command-line options mapped onto io_connectors.pubsub."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import pubsub as connector
from io_connectors.after_run import AfterRun
from io_connectors.uri import SourceSpec
from pipelines.adapters.pubsub_options import PubSubOptions
from pipelines.options import AnalyticsOptions
from runners import runner_key
from runners.direct import finalizes_before_writing

check_uri = connector.check_uri


def read_settings_from_options(options: PipelineOptions) -> dict[str, Any]:
    """ReadFromPubSub keyword arguments from the CLI options."""
    ps = options.view_as(PubSubOptions)
    an = options.view_as(AnalyticsOptions)
    return {
        "id_label": ps.pubsub_id_label,
        "timestamp_attribute": ps.pubsub_timestamp_attribute,
        "max_records": an.max_records,
        "max_read_time": an.max_read_time,
        "stop_when_idle": ps.pubsub_stop_when_idle,
        "ack_deadline": ps.pubsub_ack_deadline,
        "max_messages": ps.pubsub_max_messages,
        "bundle_seconds": ps.pubsub_bundle_seconds,
        "idle_watermark": ps.pubsub_idle_watermark,
    }


def is_dataflow(options: PipelineOptions) -> bool:
    """Dataflow runs Beam's built-in Pub/Sub read (it deduplicates and keeps the watermark itself)."""
    return "dataflow" in runner_key(options)


def source_from_uri(spec: SourceSpec, options: PipelineOptions, after_run: AfterRun) -> beam.PTransform:
    """The read transform for --source pubsub://projects/P/{subscriptions|topics}/NAME.

    `after_run` deletes a topic source's own subscription when the run ends and, on a runner that
    finalizes read bundles before it writes, acknowledges the messages once the run succeeded."""
    path = check_uri(spec)
    kwargs = read_settings_from_options(options)
    kwargs.update(
        native=not is_dataflow(options), ack_after_run=finalizes_before_writing(options), after_run=after_run
    )
    if path.is_topic:
        return connector.ReadFromPubSub(topic=path.path, **kwargs)
    return connector.ReadFromPubSub(subscription=path.path, **kwargs)
