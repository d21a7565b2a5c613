"""Options of the object-storage sinks and of the sovereignty guard (imports only Beam).

Store connections reuse Beam's own settings, so that Beam's filesystems and the guard's
bucket look-ups always talk to the same endpoint:

- S3: Beam's `--s3_endpoint_url`, `--s3_region_name`, `--s3_access_key_id`, ... (S3Options);
  without them boto3's own configuration applies, `AWS_ENDPOINT_URL(_S3)` included, so an
  emulator such as moto needs only the environment. Writes retry in botocore's standard mode,
  16 attempts (`AWS_MAX_ATTEMPTS` / `max_attempts` in the AWS profile sets another number;
  `AWS_RETRY_MODE=adaptive` adds client-side rate limiting): an outage of about a minute or
  two is ridden out, where boto3's legacy default gives up after a few seconds.
- Azure Blob: the `AZURE_STORAGE_CONNECTION_STRING` environment variable (Beam reads it when
  `--azure_connection_string` is absent), or `--blob_service_endpoint` with Azure AD
  credentials. A connection string on the command line is refused: it carries the account
  key, and command lines end up in process lists, shell history and job graphs.
- GCS: Application Default Credentials; with `STORAGE_EMULATOR_HOST` set the sink talks to
  that emulator anonymously.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from apache_beam.options.pipeline_options import AzureOptions, PipelineOptions, S3Options

AZURE_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
# Standard mode waits rand(0..1) x 1, 2, 4, 8, 16, then 20 s between attempts: 16 attempts wait
# about 2 minutes on average, rarely under 1 (legacy: 5 attempts, 7.5 s on average).
S3_WRITE_ATTEMPTS = 16
S3_RETRY_MODES = ("standard", "adaptive")


class SinkOptionError(ValueError):
    """A sink setting that must not be used as given; the message says what to do instead."""


class SinkOptions(PipelineOptions):
    """`--source_region` for sources whose URI names no region (the guard's other options,
    --jurisdiction and --sink_region, are analytics options)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(
            "sinks and data sovereignty",
            description=(
                "S3: Beam's --s3_endpoint_url/--s3_region_name/--s3_access_key_id options, or boto3's "
                "environment (AWS_ENDPOINT_URL, AWS_REGION, ...); writes retry in boto3's standard mode, "
                f"{S3_WRITE_ATTEMPTS} attempts (about 2 minutes), or AWS_MAX_ATTEMPTS. Azure Blob: the "
                f"{AZURE_CONNECTION_STRING_ENV} environment variable (never on the command line) or "
                f"--blob_service_endpoint with Azure AD. GCS: default credentials, or {GCS_EMULATOR_ENV} "
                "for an emulator."
            ),
        )
        group.add_argument(
            "--source_region",
            default=None,
            help="Region of the source for --jurisdiction when its URI names none: needed for "
            "eventhubs:// (the namespace's Azure region); for pubsub:// it overrides the look-up of "
            "the topic's message storage policy; for kinesis:// ?region= in the URI wins.",
        )


def check_sink_options(options: PipelineOptions) -> None:
    """Refuse settings that would leak secrets (raises SinkOptionError)."""
    if options.view_as(AzureOptions).azure_connection_string:
        raise SinkOptionError(
            "--azure_connection_string puts the storage account key on the command line; "
            f"unset it and export {AZURE_CONNECTION_STRING_ENV} instead."
        )


def gcs_emulator_host() -> str | None:
    """The GCS emulator endpoint when STORAGE_EMULATOR_HOST is set (clients go there anonymously)."""
    return os.environ.get(GCS_EMULATOR_ENV) or None


def s3_retries(max_attempts: int | None, retry_mode: str | None) -> dict[str, Any]:
    """botocore's `retries` for the S3 sink from the configured AWS_MAX_ATTEMPTS/AWS_RETRY_MODE
    (None: not configured): standard mode and S3_WRITE_ATTEMPTS unless configured otherwise."""
    return {
        "mode": retry_mode if retry_mode in S3_RETRY_MODES else "standard",
        "total_max_attempts": max_attempts or S3_WRITE_ATTEMPTS,
    }


def s3_client(options: PipelineOptions, **config: Any) -> Any:  # noqa: ANN401 - a boto3 S3 client
    """A boto3 S3 client with Beam's S3 options (endpoint, keys, TLS) where set, boto3's own
    configuration elsewhere, and writes retried per `s3_retries` unless `config` has `retries`."""
    import boto3
    import botocore.session
    from botocore.config import Config

    core = botocore.session.Session()
    config.setdefault(
        "retries", s3_retries(core.get_config_variable("max_attempts"), core.get_config_variable("retry_mode"))
    )
    s3 = options.view_as(S3Options)
    return boto3.session.Session(botocore_session=core).client(
        "s3",
        endpoint_url=s3.s3_endpoint_url,
        region_name=s3.s3_region_name,
        api_version=s3.s3_api_version,
        aws_access_key_id=s3.s3_access_key_id,
        aws_secret_access_key=s3.s3_secret_access_key,
        aws_session_token=s3.s3_session_token,
        verify=s3.s3_verify,
        use_ssl=not s3.s3_disable_ssl,
        config=Config(**config),
    )
