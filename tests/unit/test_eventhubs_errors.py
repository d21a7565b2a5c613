"""Error explanations, client configuration and URI/option parsing of the Event Hubs connector."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.eventhubs import EventHubsBatch, ReadSettings, to_raw_batch
from io_connectors.eventhubs_client import (
    EventHubsError,
    EventHubsTarget,
    client_config,
    explain,
    explain_exception,
    parse_target,
    parse_timestamp_ms,
)
from io_connectors.uri import UriError, parse_source
from pipelines.adapters.eventhubs import settings_from_options, target_from_options

TARGET = EventHubsTarget("contoso-eu", "orders", connection_string_env="EH_CONN")
LOCAL = EventHubsTarget("local", "orders", bootstrap="127.0.0.1:9", security_protocol="plaintext")


def test_unreachable_namespace_names_tier_port_and_name() -> None:
    text = explain("_TRANSPORT", "Connection refused", TARGET)
    assert "contoso-eu.servicebus.windows.net:9093" in text
    assert "Standard tier" in text and "9093" in text and "namespace name" in text


def test_unreachable_override_names_the_bootstrap_option() -> None:
    text = explain("_ALL_BROKERS_DOWN", "1/1 brokers are down", LOCAL)
    assert "--kafka_bootstrap" in text and "127.0.0.1:9" in text


def test_bad_connection_string_names_the_env_var_and_rights() -> None:
    text = explain("_AUTHENTICATION", "SASL authentication error: Authentication failed", TARGET)
    assert "$EH_CONN" in text and "Listen" in text and "Shared access policies" in text


def test_bad_entra_identity_names_the_roles() -> None:
    entra = EventHubsTarget("contoso-eu", "orders", auth="entra")
    text = explain("SASL_AUTHENTICATION_FAILED", "Invalid token", entra)
    assert "Azure Event Hubs Data Receiver" in text and "az login" in text


def test_topic_authorization_is_a_rights_problem() -> None:
    assert "refused" in explain("TOPIC_AUTHORIZATION_FAILED", "Not authorized", TARGET)


def test_missing_hub_names_hub_namespace_and_fix() -> None:
    text = explain("UNKNOWN_TOPIC_OR_PART", "Broker: Unknown topic or partition", TARGET)
    assert "'orders' does not exist" in text and "'contoso-eu'" in text and "az eventhubs eventhub create" in text


@pytest.mark.parametrize(
    "message",
    [
        "SASL authentication error: Kafka is not enabled for this namespace",
        "The Kafka endpoint is not available in the Basic tier",
    ],
)
def test_basic_tier_is_recognised_before_credentials(message: str) -> None:
    text = explain("_AUTHENTICATION", message, TARGET)
    assert "Basic tier" in text and "Upgrade the namespace to Standard" in text


def test_explain_exception_reads_the_kafka_error() -> None:
    from confluent_kafka import KafkaError, KafkaException

    err = explain_exception(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "nope")), TARGET)
    assert isinstance(err, EventHubsError) and "does not exist" in str(err)


def test_connection_string_comes_from_the_named_env_var() -> None:
    config = client_config(TARGET, environ={"EH_CONN": "Endpoint=sb://contoso-eu.servicebus.windows.net/;K=V"})
    assert config["bootstrap.servers"] == "contoso-eu.servicebus.windows.net:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanisms"] == "PLAIN"
    assert config["sasl.username"] == "$ConnectionString"
    assert config["sasl.password"].startswith("Endpoint=sb://")


def test_missing_connection_string_env_var_is_a_clear_error() -> None:
    with pytest.raises(EventHubsError, match="EH_CONN is not set"):
        client_config(TARGET, environ={})


def test_plaintext_bootstrap_needs_no_secret() -> None:
    config = client_config(LOCAL, environ={})
    assert config["bootstrap.servers"] == "127.0.0.1:9"
    assert config["security.protocol"] == "PLAINTEXT"
    assert "sasl.password" not in config


def test_uri_parsing() -> None:
    target = parse_target(parse_source("eventhubs://contoso-eu/orders?consumer_group=analytics"))
    assert (target.namespace, target.hub, target.consumer_group) == ("contoso-eu", "orders", "analytics")
    assert parse_target(parse_source("eventhubs://ns.servicebus.windows.net/h")).endpoint == (
        "ns.servicebus.windows.net:9093"
    )
    assert parse_target(parse_source("eventhubs://ns/h")).consumer_group == "$Default"
    with pytest.raises(UriError, match="NAMESPACE/HUB"):
        parse_target(parse_source("eventhubs://only-namespace"))


def test_options_map_to_target_and_settings() -> None:
    options = PipelineOptions([
        "--kafka_bootstrap", "127.0.0.1:1234", "--eventhubs_security_protocol", "plaintext",
        "--eventhubs_start_position", "timestamp", "--eventhubs_start_timestamp", "2026-01-01T00:00:00Z",
        "--max_records", "10", "--eventhubs_read_to_latest",
    ])
    target = target_from_options(parse_source("eventhubs://ns/hub?consumer_group=g"), options)
    assert target.endpoint == "127.0.0.1:1234" and target.consumer_group == "g"
    settings = settings_from_options(options)
    assert settings.start_timestamp_ms == 1_767_225_600_000
    assert settings.max_records == 10 and settings.read_to_latest and settings.bounded


def test_timestamp_start_needs_a_timestamp() -> None:
    with pytest.raises(UriError, match="--eventhubs_start_timestamp"):
        ReadSettings(start_position="timestamp").validate()
    with pytest.raises(UriError, match="ISO-8601"):
        parse_timestamp_ms("yesterday")
    assert parse_timestamp_ms("1767225600000") == 1_767_225_600_000


def test_batch_becomes_raw_batch_with_positions_and_enqueued_times() -> None:
    batch = EventHubsBatch("orders", 3, [7, 9], [1000, 1001], [b"k", None], [b"a", b"b"], [(("h", b"v"),), ()])
    raw = to_raw_batch(batch)
    assert raw.records == [b"a", b"b"] and raw.arrival_ms == [1000, 1001]
    assert raw.position(1) == "eventhubs://orders/3@9"
    records = list(batch.records())
    assert records[0].headers == (("h", b"v"),) and records[1].key is None and len(batch) == 2


def test_endless_reads_are_unbounded_and_bounded_reads_are_not() -> None:
    import apache_beam as beam

    from io_connectors.eventhubs import ReadFromEventHubs

    pipeline = beam.Pipeline()
    endless = pipeline | "Endless" >> ReadFromEventHubs(LOCAL, ReadSettings())
    bounded = pipeline | "Bounded" >> ReadFromEventHubs(LOCAL, ReadSettings(max_records=5))
    assert not endless.is_bounded
    assert bounded.is_bounded  # so the bounded fast path (global-window combine) can follow


def test_producer_is_idempotent_by_default() -> None:
    from io_connectors.eventhubs_writer import producer_config

    assert producer_config(LOCAL)["enable.idempotence"] is True
    assert producer_config(LOCAL, idempotent=False)["enable.idempotence"] is False
