"""Options of the object-storage sinks and of the sovereignty guard (imports only Beam).

Store connections reuse Beam's own settings, so that Beam's filesystems and the guard's
bucket look-ups always talk to the same endpoint:

- S3: Beam's `--s3_endpoint_url`, `--s3_region_name`, `--s3_access_key_id`, ... (S3Options);
  without them boto3's own configuration applies, `AWS_ENDPOINT_URL(_S3)` included, so an
  emulator such as moto needs only the environment.
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

from apache_beam.options.pipeline_options import AzureOptions, PipelineOptions

AZURE_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


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
                "environment (AWS_ENDPOINT_URL, AWS_REGION, ...). Azure Blob: the "
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
