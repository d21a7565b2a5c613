"""Options of the Event Hubs (Kafka-protocol) source and sink. Imports only Beam, so --help
lists them where confluent-kafka is not installed."""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

START_POSITIONS = ("earliest", "latest", "timestamp", "committed")
AUTH_MODES = ("connection_string", "entra")
SECURITY_PROTOCOLS = ("sasl_ssl", "plaintext", "ssl", "sasl_plaintext")
DEFAULT_CONNECTION_STRING_ENV = "EVENTHUBS_CONNECTION_STRING"


class EventHubsOptions(PipelineOptions):
    """--eventhubs_* options; max_records / max_read_time come from AnalyticsOptions."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("Event Hubs / Kafka source (eventhubs://NAMESPACE/HUB?consumer_group=G)")
        group.add_argument(
            "--kafka_bootstrap",
            default=None,
            help="host:port of a Kafka-protocol broker to use instead of NAMESPACE.servicebus.windows.net:9093 "
            "(any Kafka broker works: this is also a native Python Kafka source). Default: the namespace endpoint",
        )
        group.add_argument(
            "--eventhubs_auth",
            default="connection_string",
            choices=AUTH_MODES,
            help="connection_string: SASL PLAIN with the connection string read from the environment variable "
            "named by --eventhubs_connection_string_env; entra: OAUTHBEARER tokens from azure-identity's "
            "DefaultAzureCredential. Default: connection_string",
        )
        group.add_argument(
            "--eventhubs_connection_string_env",
            default=DEFAULT_CONNECTION_STRING_ENV,
            help="Name of the environment variable holding the namespace connection string (secrets are never "
            f"taken on the command line). Default: {DEFAULT_CONNECTION_STRING_ENV}",
        )
        group.add_argument(
            "--eventhubs_security_protocol",
            default="sasl_ssl",
            choices=SECURITY_PROTOCOLS,
            help="Kafka security.protocol; plaintext for local test brokers. Default: sasl_ssl",
        )
        group.add_argument(
            "--eventhubs_start_position",
            default="earliest",
            choices=START_POSITIONS,
            help="Where partitions start: earliest retained event, latest (only new events), the first event "
            "enqueued at or after --eventhubs_start_timestamp, or the consumer group's committed offsets "
            "(falling back to earliest). Partitions that appear while reading always start at earliest. "
            "Default: earliest",
        )
        group.add_argument(
            "--eventhubs_start_timestamp",
            default=None,
            help="Start time for --eventhubs_start_position=timestamp: epoch millis or ISO-8601.",
        )
        group.add_argument(
            "--eventhubs_read_to_latest",
            action="store_true",
            default=False,
            help="Bounded read: stop each partition once it has caught up with the events present when "
            "its reading started.",
        )
        group.add_argument(
            "--eventhubs_commit_offsets",
            action="store_true",
            default=False,
            help="Commit read offsets to the consumer group when bundles are finalized, so Azure tooling "
            "shows the lag (on the local in-memory DirectRunner: once the run has succeeded, since it "
            "finalizes before writing). The runner's checkpoint stays the source of truth.",
        )
        group.add_argument(
            "--eventhubs_max_partitions",
            type=int,
            default=32,
            help="Partition ids below this are watched, so partitions added while streaming are read "
            "(Event Hubs Standard allows up to 32). Default: 32",
        )
        group.add_argument(
            "--eventhubs_batch_size",
            type=int,
            default=5000,
            help="Most records per output batch. Default: 5000",
        )
        group.add_argument(
            "--eventhubs_connect_timeout",
            type=float,
            default=30.0,
            help="Seconds to wait for the endpoint before failing with an explanation. Default: 30",
        )
