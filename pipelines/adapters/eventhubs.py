"""--source eventhubs://...: the command-line options mapped onto io_connectors.eventhubs."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import eventhubs as connector
from io_connectors.after_run import AfterRun
from io_connectors.uri import SourceSpec

check_uri = connector.check_uri


def source_from_uri(spec: SourceSpec, options: PipelineOptions, after_run: AfterRun) -> beam.PTransform:
    return connector.source_from_uri(spec, options)
