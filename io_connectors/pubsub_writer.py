"""Pub/Sub sink: `WriteToPubSub` publishes elements through the client's batching, one bundle
succeeding only once Pub/Sub has confirmed every message of it."""

from __future__ import annotations

from typing import Any, Callable

import apache_beam as beam
import orjson
from apache_beam.metrics import Metrics
from google.cloud import pubsub_v1

from io_connectors.metrics import NAMESPACE
from io_connectors.pubsub import parse_topic


def _as_message(element: Any) -> tuple[bytes, dict[str, str]]:
    if isinstance(element, tuple) and len(element) == 2 and isinstance(element[1], dict):
        data, attributes = element
    else:
        data, attributes = element, {}
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif isinstance(data, dict):
        data = orjson.dumps(data)
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"WriteToPubSub takes bytes, str, dict or (payload, attributes); got {type(data).__name__}")
    return bytes(data), {str(k): str(v) for k, v in attributes.items()}


class _PublishFn(beam.DoFn):
    def __init__(
        self,
        topic: str,
        ordering_key: Callable[[Any], str] | None,
        max_messages: int,
        max_bytes: int,
        max_latency_s: float,
    ) -> None:
        self._topic = topic
        self._ordering_key = ordering_key
        self._batch = (max_messages, max_bytes, max_latency_s)
        self._published = Metrics.counter(NAMESPACE, "pubsub_messages_published")

    def setup(self) -> None:
        max_messages, max_bytes, max_latency = self._batch
        self._publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_messages=max_messages, max_bytes=max_bytes, max_latency=max_latency
            ),
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=self._ordering_key is not None),
        )

    def start_bundle(self) -> None:
        self._futures: list[tuple[Any, str]] = []

    def process(self, element: Any) -> None:
        data, attributes = _as_message(element)
        key = self._ordering_key(element) if self._ordering_key else ""
        future = self._publisher.publish(self._topic, data, ordering_key=key or "", **attributes)
        self._futures.append((future, key or ""))

    def finish_bundle(self) -> None:
        # The bundle succeeds only once Pub/Sub has every message; a failure retries the bundle.
        futures, self._futures = self._futures, []
        failed = None
        for future, key in futures:
            try:
                future.result(timeout=120)
            except Exception as err:  # noqa: BLE001 - re-raised below after resuming ordered keys
                failed = err
                if key:
                    self._publisher.resume_publish(self._topic, key)
        if failed is not None:
            raise failed
        self._published.inc(len(futures))

    def teardown(self) -> None:
        publisher = getattr(self, "_publisher", None)
        if publisher is not None:
            publisher.stop()


class WriteToPubSub(beam.PTransform):
    """Publishes elements (bytes, str, dict as JSON, or (payload, attributes)) to `topic`,
    batched by the client; `ordering_key(element)` turns on ordered delivery per key."""

    def __init__(
        self,
        topic: str,
        ordering_key: Callable[[Any], str] | None = None,
        max_messages: int = 500,
        max_bytes: int = 1_000_000,
        max_latency_s: float = 0.05,
    ) -> None:
        super().__init__()
        self._fn = _PublishFn(parse_topic(topic, "topic"), ordering_key, max_messages, max_bytes, max_latency_s)

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "Publish" >> beam.ParDo(self._fn)
