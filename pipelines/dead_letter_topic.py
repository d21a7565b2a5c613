"""--pubsub_dead_letter_topic: dead letters also published to a Pub/Sub topic, whatever the source.

The messages carry the same JSON as the dead-letter files, with `error` and `source` as
attributes. The Pub/Sub SDK is imported only when the option is set."""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.adapters.pubsub_options import PubSubOptions
from transforms.sinks import dead_letter_records


def _dead_letter_messages(lines: bytes) -> Iterator[tuple[bytes, dict[str, str]]]:
    for record in dead_letter_records(lines):
        attributes = {"error": str(record.get("error", ""))[:1000], "source": str(record.get("source", ""))[:1000]}
        yield orjson.dumps(record), attributes


class PublishDeadLetters(beam.PTransform):
    """Dead letters -> the same JSON as their files, published to a topic, with error and source as
    attributes.

    Takes a PCollection, or a tuple of them, whose elements are `dead_letter_lines` bytes (one
    batch's dead letters each). Each input is published on its own, without a Flatten, which a
    local runner would materialize whole."""

    def __init__(self, topic: str) -> None:
        super().__init__()
        from io_connectors.pubsub import parse_topic  # the Pub/Sub SDK only when the option is set

        self._topic = parse_topic(topic)

    def expand(self, pcolls: beam.PCollection | tuple[beam.PCollection, ...]) -> tuple[beam.PCollection, ...]:
        inputs = (pcolls,) if isinstance(pcolls, beam.PCollection) else tuple(pcolls)
        return tuple(
            pcoll
            | f"ToMessages{index}" >> beam.FlatMap(_dead_letter_messages)
            | f"Write{index}" >> _write_to_pubsub(self._topic)
            for index, pcoll in enumerate(inputs)
        )


def _write_to_pubsub(topic: str) -> beam.PTransform:
    from io_connectors.pubsub_writer import WriteToPubSub

    return WriteToPubSub(topic)


def publish_dead_letters(dead_letters: Any, options: PipelineOptions) -> Any:
    """Pipeline hook: publishes `dead_letters` to --pubsub_dead_letter_topic when it is set.

    `dead_letters` is what add_analytics returns under "dead_letters": a PCollection, or a tuple
    of them, of `dead_letter_lines` bytes (one batch's dead letters each); each dead letter
    becomes one message.

    Returns the publish transform's output, or None when the option is not set (the Pub/Sub
    SDK is imported only then)."""
    topic = options.view_as(PubSubOptions).pubsub_dead_letter_topic
    if not topic:
        return None
    return dead_letters | "PublishDeadLettersToPubSub" >> PublishDeadLetters(topic)
