"""Event Hubs (or any Kafka-protocol broker) writer: an idempotent producer per DoFn instance,
and bundles that end only when every event in them was acknowledged.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import orjson

from io_connectors.eventhubs_client import EventHubsError, EventHubsTarget, client_config, explain

__all__ = ["WriteToEventHubs", "producer_config"]


class _Deliveries:
    """Counts acknowledgements; keeps the first errors so none is dropped silently."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.errors: list[str] = []

    def __call__(self, error: Any, message: Any) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(f"{error.name()}: {error.str()}")
        self.last_error = error


def producer_config(target: EventHubsTarget, idempotent: bool = True, **extra: Any) -> dict[str, Any]:
    config = {
        **client_config(target),
        # Idempotence: retries after a lost ack never duplicate or reorder a partition's events.
        "enable.idempotence": idempotent,
        "linger.ms": 20,
        "batch.size": 512 * 1024,
        "compression.type": "none",  # Event Hubs' Kafka endpoint rejects compressed batches on some tiers
        "message.timeout.ms": 120_000,
    }
    config.update(extra)
    return config


class _Flusher:
    """Produce, poll, and flush-or-raise: every event acknowledged, or an error naming the cause."""

    def __init__(self, producer: Any, target: EventHubsTarget, flush_timeout_s: float) -> None:
        self._producer = producer
        self._target = target
        self._flush_timeout_s = flush_timeout_s
        self.deliveries = _Deliveries()
        self._sent = 0

    def send(self, value: bytes, key: bytes | None = None, partition: int | None = None) -> None:
        kwargs: dict[str, Any] = {"value": value, "key": key, "on_delivery": self.deliveries}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(self._target.hub, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain, then retry
        self._sent += 1
        self._producer.poll(0)

    def flush(self) -> int:
        left = self._producer.flush(self._flush_timeout_s)
        deliveries, sent = self.deliveries, self._sent
        self.deliveries, self._sent = _Deliveries(), 0
        if deliveries.failed or left:
            first = getattr(deliveries, "last_error", None)
            reason = (
                explain(first.name(), first.str(), self._target) if first is not None
                else f"{left} events still unacknowledged after {self._flush_timeout_s:.0f} s"
            )
            raise EventHubsError(
                f"{deliveries.failed + left} of {sent} events were not delivered to {self._target.hub!r} "
                f"(first errors: {deliveries.errors or ['timeout']}). {reason}"
            )
        return deliveries.delivered


class _WriteEvents(beam.DoFn):
    def __init__(self, target: EventHubsTarget, key_field: str | None, idempotent: bool,
                 flush_timeout_s: float, producer_extra: dict[str, Any]) -> None:
        self._target = target
        self._key_field = key_field
        self._idempotent = idempotent
        self._flush_timeout_s = flush_timeout_s
        self._extra = producer_extra

    def setup(self) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(producer_config(self._target, self._idempotent, **self._extra))
        self._flusher = _Flusher(self._producer, self._target, self._flush_timeout_s)

    def process(self, element: Any) -> None:
        key = None
        if isinstance(element, dict):
            if self._key_field is not None:
                raw_key = element.get(self._key_field)
                key = None if raw_key is None else str(raw_key).encode()
            value = orjson.dumps(element)
        elif isinstance(element, str):
            value = element.encode()
        elif isinstance(element, (bytes, bytearray)):
            value = bytes(element)
        else:
            raise TypeError(f"WriteToEventHubs takes dicts, str or bytes, not {type(element).__name__}.")
        self._flusher.send(value, key)

    def finish_bundle(self) -> None:
        # A bundle is done only when the service acknowledged every event in it.
        self._flusher.flush()

    def teardown(self) -> None:
        producer = getattr(self, "_producer", None)
        if producer is not None:
            producer.flush(5)


class WriteToEventHubs(beam.PTransform):
    """Writes dicts (JSON-encoded; key from `key_field`), str or bytes to an event hub.

    Idempotent producer, batched by librdkafka (linger/batch size). Each bundle waits for all
    acknowledgements and fails with EventHubsError naming the cause if any event was not
    delivered, so the runner retries the bundle instead of losing events.
    """

    def __init__(self, target: EventHubsTarget, key_field: str | None = None, idempotent: bool = True,
                 flush_timeout_s: float = 120.0, producer_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._fn = _WriteEvents(target, key_field, idempotent, flush_timeout_s, dict(producer_config or {}))

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "Produce" >> beam.ParDo(self._fn)
