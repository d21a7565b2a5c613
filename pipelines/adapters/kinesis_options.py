"""Options of the Kinesis source (`--kinesis_*`), importing only Beam, so that
`python -m pipelines.run --help` lists them even where boto3 is missing.

--max_records and --max_read_time (AnalyticsOptions) bound a Kinesis read too;
pipelines/adapters/kinesis.py maps all of them onto the connector.
"""

from __future__ import annotations

import argparse
import math
import os
import re

from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.timestamps import to_epoch_millis

START_POSITIONS = ("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP")
WATERMARK_MODES = ("arrival", "event_time")


class KinesisOptions(PipelineOptions):
    """How `kinesis://STREAM?region=R` is read."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("kinesis source (kinesis://STREAM?region=R)")
        group.add_argument(
            "--kinesis_endpoint_url",
            default=None,
            help="Kinesis endpoint override, e.g. http://127.0.0.1:4567 for kinesalite. "
            "Default: $AWS_ENDPOINT_URL_KINESIS, then $AWS_ENDPOINT_URL, then AWS.",
        )
        group.add_argument(
            "--kinesis_start_position",
            default="LATEST",
            choices=START_POSITIONS,
            help="Where a new read starts in each open shard: LATEST (only new records), TRIM_HORIZON "
            "(oldest retained record, closed shards included, parents before children) or AT_TIMESTAMP "
            "(with --kinesis_start_timestamp). Default: LATEST",
        )
        group.add_argument(
            "--kinesis_start_timestamp",
            default=None,
            help="Start time for AT_TIMESTAMP: epoch millis or ISO-8601 (naive means UTC).",
        )
        group.add_argument(
            "--kinesis_read_to_latest",
            action="store_true",
            default=False,
            help="Bounded read: stop each shard at its end as of when the reader catches up "
            "(MillisBehindLatest = 0), so that a local run finishes and its windows close.",
        )
        group.add_argument(
            "--kinesis_watermark",
            default="arrival",
            choices=WATERMARK_MODES,
            help="Watermark source: arrival (Kinesis ApproximateArrivalTimestamp) or event_time "
            "(the --event_time_field of each record). Both advance on idle shards. Default: arrival",
        )
        group.add_argument(
            "--kinesis_deaggregate",
            default="on",
            choices=("on", "off"),
            help="on: split KPL-aggregated records (KPL, Kinesis Agent, Fluent Bit's aggregated mode) into their "
            "user records; an aggregate with a bad MD5 or body goes to the dead letters whole, with the reason. "
            "off: hand every Kinesis record on as it is. Default: on",
        )
        group.add_argument(
            "--kinesis_poll_interval",
            type=float,
            default=1.0,
            help="Seconds to wait before polling a shard again after an empty GetRecords. Default: 1",
        )
        group.add_argument(
            "--kinesis_discovery_interval",
            type=float,
            default=10.0,
            help="Seconds between shard listings that discover resharded (child) shards. Default: 10",
        )

    def validate_kinesis(self) -> list[str]:
        """Readable problems with the --kinesis_* values (empty when all is well)."""
        problems = []
        if self.kinesis_start_position == "AT_TIMESTAMP":
            if not self.kinesis_start_timestamp:
                problems.append(
                    "--kinesis_start_position AT_TIMESTAMP needs --kinesis_start_timestamp "
                    "(epoch millis or ISO-8601, e.g. 2026-01-01T00:00:00Z)"
                )
            else:
                try:
                    to_epoch_millis(self.kinesis_start_timestamp)
                except ValueError:
                    problems.append(
                        f"--kinesis_start_timestamp {self.kinesis_start_timestamp!r} is neither epoch millis "
                        "nor ISO-8601 (e.g. 2026-01-01T00:00:00Z)"
                    )
        for option, value, most in (
            ("--kinesis_poll_interval", self.kinesis_poll_interval, 3600),
            ("--kinesis_discovery_interval", self.kinesis_discovery_interval, 86400),
        ):
            if value is not None and not (math.isfinite(value) and 0 < value <= most):
                problems.append(f"{option} {value} must be a positive number of seconds up to {most}")
        if self.kinesis_endpoint_url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.kinesis_endpoint_url):
            problems.append(
                f"--kinesis_endpoint_url {self.kinesis_endpoint_url!r} is not an http(s) URL; "
                "write it like http://127.0.0.1:4567"
            )
        return problems

    def endpoint_url(self) -> str | None:
        return (
            self.kinesis_endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_KINESIS")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
