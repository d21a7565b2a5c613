"""Command-line options of the Pub/Sub connector (imports only Beam, so --help always lists them).

The bounded-read options --max_records and --max_read_time live in AnalyticsOptions and
apply to Pub/Sub too; --pubsub_stop_when_idle adds "stop once the subscription is drained".
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions


class PubSubOptions(PipelineOptions):
    """Options for pubsub:// sources, the Pub/Sub writer and the dead-letter topic."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("pubsub (pubsub://projects/P/subscriptions/S or .../topics/T)")
        group.add_argument(
            "--pubsub_timestamp_attribute",
            default=None,
            help="Message attribute holding the event time (epoch millis or RFC 3339); the reader's "
            "watermark follows it instead of the publish time. Default: publish time",
        )
        group.add_argument(
            "--pubsub_id_label",
            default=None,
            help="Message attribute holding a unique id used to drop redelivered duplicates. "
            "Default: the Pub/Sub message id",
        )
        group.add_argument(
            "--pubsub_stop_when_idle",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Bounded read: stop once no message has arrived for this many seconds (drained).",
        )
        group.add_argument(
            "--pubsub_ack_deadline",
            type=int,
            default=60,
            help="Seconds a pulled message stays leased before Pub/Sub redelivers it; the reader "
            "keeps extending the lease until the bundle holding it is finalized (10..600). Default: 60",
        )
        group.add_argument(
            "--pubsub_max_messages",
            type=int,
            default=1000,
            help="Messages asked for in each pull; each pull becomes one batch. Default: 1000",
        )
        group.add_argument(
            "--pubsub_bundle_seconds",
            type=float,
            default=10.0,
            help="The reader checkpoints (so the runner commits and acknowledges) at least this often. Default: 10",
        )
        group.add_argument(
            "--pubsub_idle_watermark",
            type=float,
            default=10.0,
            metavar="SECONDS",
            help="When no message has arrived for this long, the watermark advances to wall-clock time "
            "minus this delay, so windows still close on a quiet subscription. Default: 10",
        )
        group.add_argument(
            "--pubsub_dead_letter_topic",
            default=None,
            help="Also publish undecodable records (the dead-letter JSON) to this topic, "
            "projects/P/topics/T, besides writing them to --dead_letter files.",
        )
