"""The pipeline graph: read -> decode + pre-aggregate -> window/combine -> write.

This module only wires the graph from a JobConfig; the steps live in transforms/
(preaggregate, window_aggregate, rolling, write_windows, sinks, overflow).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions
from apache_beam.transforms.window import GlobalWindows

from io_connectors.after_run import AfterRun
from pipelines.adapters import source_from_uri
from pipelines.config import JobConfig
from pipelines.dead_letter_topic import publish_dead_letters
from transforms.overflow import OverflowDeadLetters
from transforms.preaggregate import DEAD_LETTER, DecodeAndPreAggregate
from transforms.rolling import WriteRolledAggregates
from transforms.sinks import WriteDeadLetters
from transforms.window_aggregate import BoundedAggregate, WindowedAggregate


def build_pipeline(pipeline: beam.Pipeline, config: JobConfig, after_run: AfterRun | None = None) -> None:
    """Adds the analytics graph for `config` to `pipeline`. Stream readers hand what must wait for
    the run's success (resume positions, held acknowledgements) to `after_run`, which whoever
    runs the pipeline commits (see io_connectors.after_run.run_and_commit)."""
    batches = pipeline | "Read" >> source_from_uri(config.source, pipeline.options, config.input_format, after_run)
    if not fires_processing_time(pipeline.runner, pipeline.options):
        config = replace(config, file_roll_s=None)  # one roll: the runner gives all output at the end anyway
    # With --resume the read has registered its position store by now: name this run's files by it.
    outputs = add_analytics(batches, config, run_key=after_run.start_key() if after_run is not None else "")
    # Dead letters can also go to a Pub/Sub topic, whatever the source.
    publish_dead_letters(outputs["dead_letters"], pipeline.options)


def fires_processing_time(runner: object, options: PipelineOptions) -> bool:
    """Whether `runner` fires processing-time triggers (the file roll's). Beam's DirectRunner runs
    this pipeline on the FnApiRunner, as does a PortableRunner on an embedded job server: neither
    has a processing-time clock, and a processing-time trigger fails there (see
    runners.direct.local_runner, which moves early firings to the BundleBasedDirectRunner)."""
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.runners.portability.portable_runner import PortableRunner

    if isinstance(runner, SwitchingDirectRunner | FnApiRunner):
        return False
    if isinstance(runner, PortableRunner):
        return options.view_as(PortableOptions).job_endpoint != "embed"
    return True


def add_analytics(batches: beam.PCollection, config: JobConfig, run_key: str = "") -> dict[str, Any]:
    """The graph after the source (tests feed RawBatches here directly).

    Returns "aggregates" and "dead_letters": a tuple of PCollections (decode's and the overflow
    check's) whose elements are `dead_letter_lines` bytes, one per batch; `dead_letter_records`
    turns one back into dicts."""
    if config.dedupe_by:
        from transforms.dedupe import Dedupe

        batches = batches | "Dedupe" >> Dedupe(
            config.dedupe_by,
            config.schema.event_time_field,
            config.window,
            config.allowed_lateness_s,
            config.dedupe_max_ids,
            time_unit=config.schema.time_unit,
        )
    dims = config.schema.dimensions
    decoded = batches | "DecodeAndPreAggregate" >> beam.ParDo(
        DecodeAndPreAggregate(
            config.schema,
            config.input_format,
            config.avro_schema,
            config.window,
            config.window_shards,
            timestamped=config.streaming_path,
        )
    ).with_outputs(DEAD_LETTER, main="partials")
    if config.streaming_path:
        aggregates = decoded.partials | "Aggregate" >> WindowedAggregate(
            config.window, dims, config.early_firing_s, config.allowed_lateness_s
        )
    else:
        aggregates = decoded.partials | "Aggregate" >> BoundedAggregate(config.window, dims)
    aggregates | "WriteAggregates" >> WriteRolledAggregates(
        config.output.path,
        config.output_format,
        dims,
        config.window_shards,
        windowed=config.streaming_path,
        roll_s=config.file_roll_s,
        run_key=run_key,
    )
    overflows = (
        aggregates
        | "OverflowDeadLetters" >> beam.ParDo(OverflowDeadLetters(dims, windowed=config.streaming_path))
        # Dead letters are in the global window, wherever they come from.
        | "OverflowsInGlobalWindow" >> beam.WindowInto(GlobalWindows())
    )
    # Each written where it is made, without a Flatten: a local runner materializes a Flatten of
    # two stages' outputs whole, which would hold every dead letter of the run in memory.
    dead_letters = (decoded[DEAD_LETTER], overflows)
    hidden = config.dead_letter_in_output  # named so that readers of the aggregates' table skip them
    dead_letters[0] | "WriteDeadLetters" >> WriteDeadLetters(config.dead_letter.path, hidden)
    dead_letters[1] | "WriteOverflowDeadLetters" >> WriteDeadLetters(config.dead_letter.path, hidden)
    return {"aggregates": aggregates, "dead_letters": dead_letters}
