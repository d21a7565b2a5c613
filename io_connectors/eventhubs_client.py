"""Connection settings, confluent-kafka configuration and error explanations for Event Hubs'
Kafka endpoint (or any Kafka-protocol broker).

Everything here is plain data or pure functions except the small helpers at the bottom that
take an already-built client: the DoFns build clients in setup(), never in constructors.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from io_connectors.timestamps import to_epoch_millis
from io_connectors.uri import SourceSpec, UriError

LOG = logging.getLogger(__name__)

EVENTHUBS_DOMAIN = ".servicebus.windows.net"
KAFKA_PORT = 9093
DEFAULT_CONSUMER_GROUP = "$Default"


class EventHubsError(RuntimeError):
    """The endpoint, credentials or hub cannot be used; the message names the fix."""


@dataclass(frozen=True)
class EventHubsTarget:
    """Where to connect and how. Picklable: DoFns carry it and build clients in setup()."""

    namespace: str
    hub: str
    consumer_group: str = DEFAULT_CONSUMER_GROUP
    bootstrap: str | None = None  # --kafka_bootstrap override
    security_protocol: str = "sasl_ssl"
    auth: str = "connection_string"
    connection_string_env: str = "EVENTHUBS_CONNECTION_STRING"
    connect_timeout_s: float = 30.0

    @property
    def host(self) -> str:
        return self.namespace if "." in self.namespace else self.namespace + EVENTHUBS_DOMAIN

    @property
    def endpoint(self) -> str:
        return self.bootstrap or f"{self.host}:{KAFKA_PORT}"

    @property
    def uses_eventhubs_endpoint(self) -> bool:
        return self.bootstrap is None


def parse_target(spec: SourceSpec, **settings: Any) -> EventHubsTarget:
    """eventhubs://NAMESPACE/HUB?consumer_group=G -> EventHubsTarget."""
    namespace, _, hub = spec.location.strip("/").partition("/")
    if not namespace or not hub or "/" in hub:
        raise UriError(
            f"--source {spec.shown!r} must name a namespace and an event hub: eventhubs://NAMESPACE/HUB?consumer_group=G."
        )
    group = spec.param("consumer_group") or DEFAULT_CONSUMER_GROUP
    timeout = settings.get("connect_timeout_s")
    # The Kafka client takes a negative or infinite timeout as "wait forever".
    if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= 3600):
        raise UriError(f"--eventhubs_connect_timeout {timeout} must be a positive number of seconds up to 3600.")
    return EventHubsTarget(namespace=namespace, hub=hub, consumer_group=group, **settings)


def _oauth_callback(target: EventHubsTarget) -> Callable[[str], tuple[str, float]]:
    try:
        from azure.identity import DefaultAzureCredential
    except ModuleNotFoundError:
        raise EventHubsError(
            "--eventhubs_auth=entra needs azure-identity: pip install '.[azure]'"
        ) from None
    credential = DefaultAzureCredential()
    scope = f"https://{target.host}/.default"

    def token(_config: str) -> tuple[str, float]:
        access = credential.get_token(scope)
        return access.token, float(access.expires_on)

    return token


def client_config(target: EventHubsTarget, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """confluent-kafka settings shared by consumers, producers and admin clients."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {
        "bootstrap.servers": target.endpoint,
        "security.protocol": target.security_protocol.upper(),
        "client.id": f"beam-eventhubs-{target.hub}",
        # Event Hubs closes idle connections after 240 s; keep librdkafka below that.
        "connections.max.idle.ms": 180_000,
        "socket.timeout.ms": max(int(target.connect_timeout_s * 1000), 10_000),
    }
    if target.security_protocol.lower().startswith("sasl"):
        if target.auth == "entra":
            config["sasl.mechanisms"] = "OAUTHBEARER"
            config["oauth_cb"] = _oauth_callback(target)
        else:
            secret = environ.get(target.connection_string_env)
            if not secret:
                raise EventHubsError(
                    f"Environment variable {target.connection_string_env} is not set: put the namespace "
                    "connection string (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...) in it, "
                    "or use --eventhubs_auth=entra."
                )
            config["sasl.mechanisms"] = "PLAIN"
            config["sasl.username"] = "$ConnectionString"
            config["sasl.password"] = secret
    return config


# librdkafka error names (KafkaError.name()) grouped by what the user has to fix.
_UNREACHABLE = {"_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT", "_MSG_TIMED_OUT", "REQUEST_TIMED_OUT"}
_AUTH = {"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "TOPIC_AUTHORIZATION_FAILED",
         "CLUSTER_AUTHORIZATION_FAILED", "_SSL"}
_MISSING = {"UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION"}
_BASIC_TIER_HINTS = ("basic tier", "kafka is not enabled", "not enabled for kafka", "kafka endpoint is not")


def explain(name: str, message: str, target: EventHubsTarget) -> str:
    """One readable sentence (or two) naming what failed and how to fix it."""
    lowered = message.lower()
    where = f"event hub {target.hub!r} in namespace {target.namespace!r} ({target.endpoint})"
    if any(hint in lowered for hint in _BASIC_TIER_HINTS):
        return (
            f"Namespace {target.namespace!r} has no Kafka endpoint: the Basic tier does not offer it. "
            "Upgrade the namespace to Standard, Premium or Dedicated. "
            f"[{name}: {message}]"
        )
    if name in _AUTH or "authentication" in lowered or "sasl" in lowered:
        if target.auth == "entra":
            fix = (
                "check that DefaultAzureCredential finds an identity (az login, managed identity, or "
                "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET) and that it holds the role "
                "'Azure Event Hubs Data Receiver' (reading) or 'Azure Event Hubs Data Sender' (writing)"
            )
        else:
            fix = (
                f"check the connection string in ${target.connection_string_env}: copy it from the namespace's "
                "Shared access policies, with Listen (reading) or Send (writing) rights"
            )
        return f"Access to {where} was refused: {fix}. [{name}: {message}]"
    if name in _MISSING:
        return (
            f"Event hub {target.hub!r} does not exist in namespace {target.namespace!r} ({target.endpoint}): "
            "create it (az eventhubs eventhub create) or fix the name in the URI. "
            f"[{name}: {message}]"
        )
    if name in _UNREACHABLE:
        extra = (
            "; the Kafka endpoint needs the Standard tier or higher (Basic has none) and outbound TCP 9093"
            if target.uses_eventhubs_endpoint
            else "; check --kafka_bootstrap and that the broker is running"
        )
        return (
            f"Cannot reach {target.endpoint} for {where}: check the namespace name and network access{extra}. "
            f"[{name}: {message}]"
        )
    return f"Kafka error reading {where}: {name}: {message}"


def explain_exception(err: BaseException, target: EventHubsTarget) -> EventHubsError:
    """Map a KafkaException (or any exception carrying a KafkaError) to an EventHubsError."""
    kafka_error = err.args[0] if err.args and hasattr(err.args[0], "name") else None
    if kafka_error is not None:
        return EventHubsError(explain(kafka_error.name(), kafka_error.str(), target))
    return EventHubsError(explain("ERROR", str(err), target))


def list_partitions(admin_or_consumer: Any, target: EventHubsTarget) -> list[int]:
    """Partition ids of the hub; raises EventHubsError for a missing hub or an unreachable endpoint."""
    from confluent_kafka import KafkaException

    try:
        metadata = admin_or_consumer.list_topics(target.hub, timeout=target.connect_timeout_s)
    except KafkaException as err:
        raise explain_exception(err, target) from None
    topic = metadata.topics.get(target.hub)
    if topic is None:
        raise EventHubsError(explain("UNKNOWN_TOPIC_OR_PART", "not in metadata", target))
    if topic.error is not None:
        raise EventHubsError(explain(topic.error.name(), topic.error.str(), target))
    return sorted(topic.partitions)


def parse_timestamp_ms(raw: str) -> int:
    """Epoch millis or ISO-8601 (naive means UTC) -> epoch millis."""
    try:
        return to_epoch_millis(raw)
    except ValueError:
        raise UriError(
            f"--eventhubs_start_timestamp {raw!r} is neither epoch millis nor ISO-8601 (2026-01-01T00:00:00Z)."
        ) from None


def start_offsets(consumer: Any, target: EventHubsTarget, partitions: list[int], position: str,
                  timestamp_ms: int | None) -> dict[int, int]:
    """Resolve the start position to a concrete offset per partition."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        if position == "earliest":
            timeout = target.connect_timeout_s
            return {p: consumer.get_watermark_offsets(TopicPartition(target.hub, p), timeout=timeout)[0]
                    for p in partitions}
        if position == "latest":
            # ListOffsets(latest): the offset the next event will be written at.
            return {p: consumer.get_watermark_offsets(TopicPartition(target.hub, p),
                                                      timeout=target.connect_timeout_s)[1] for p in partitions}
        if position == "timestamp":
            if timestamp_ms is None:
                raise UriError("--eventhubs_start_position=timestamp needs --eventhubs_start_timestamp.")
            found = consumer.offsets_for_times([TopicPartition(target.hub, p, timestamp_ms) for p in partitions],
                                               timeout=target.connect_timeout_s)
            result = {}
            for tp in found:
                # -1: no event at or after the time yet, so start at the end.
                result[tp.partition] = tp.offset if tp.offset >= 0 else consumer.get_watermark_offsets(
                    TopicPartition(target.hub, tp.partition), timeout=target.connect_timeout_s)[1]
            return result
        if position == "committed":
            committed = consumer.committed([TopicPartition(target.hub, p) for p in partitions],
                                           timeout=target.connect_timeout_s)
            low = start_offsets(consumer, target, partitions, "earliest", None)
            return {tp.partition: tp.offset if tp.offset >= 0 else low[tp.partition] for tp in committed}
    except KafkaException as err:
        raise explain_exception(err, target) from None
    raise UriError(f"Unknown start position {position!r}; use earliest, latest, timestamp or committed.")


class NewestTimes:
    """The enqueued time of each partition's newest record (the one before its end offset), for
    source_lag_ms. One small fetch on a consumer of its own, at most every `refresh_s` while a
    partition's end moves on (the lag under-reports by up to that much); none while it stays."""

    def __init__(self, make_consumer: Callable[[], Any], hub: str, refresh_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._make_consumer = make_consumer
        self._hub = hub
        self._refresh_s = refresh_s
        self._clock = clock
        self._consumer: Any = None
        self._seen: dict[int, tuple[int, int | None, float]] = {}  # partition -> (end, time, read at)

    def newest_ms(self, partition: int, end: int) -> int | None:
        """Epoch millis of the record at offset `end - 1`; None when it cannot be read now (advisory)."""
        from confluent_kafka import KafkaException, TopicPartition

        seen = self._seen.get(partition)
        if seen and (seen[0] == end or self._clock() - seen[2] < self._refresh_s):
            return seen[1]
        newest: int | None = None
        try:
            if self._consumer is None:
                self._consumer = self._make_consumer()
            self._consumer.assign([TopicPartition(self._hub, partition, end - 1)])
            for message in self._consumer.consume(1, timeout=1.0):
                if message.error() is None and message.timestamp()[1] > 0:
                    newest = message.timestamp()[1]
            self._consumer.unassign()
        except KafkaException as err:
            LOG.debug("Partition %d: the newest record's time was not read (%s)", partition, err)
        self._seen[partition] = (end, newest, self._clock())
        return newest

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


__all__ = [
    "DEFAULT_CONSUMER_GROUP",
    "EventHubsError",
    "EventHubsTarget",
    "NewestTimes",
    "client_config",
    "explain",
    "explain_exception",
    "list_partitions",
    "parse_target",
    "parse_timestamp_ms",
    "start_offsets",
]
