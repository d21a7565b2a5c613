"""Clients of the object stores, as the sinks (and the sovereignty guard's look-ups) need them.

Store connections reuse Beam's own settings, so that Beam's filesystems, the sinks and the
guard's bucket look-ups always talk to the same endpoint:

- S3: Beam's `--s3_endpoint_url`, `--s3_region_name`, ... (S3Options); without them boto3's own
  configuration applies, `AWS_ENDPOINT_URL(_S3)` included, so an emulator such as moto needs
  only the environment. Writes retry in botocore's standard mode, 16 attempts
  (`AWS_MAX_ATTEMPTS` / `max_attempts` in the AWS profile sets another number;
  `AWS_RETRY_MODE=adaptive` adds client-side rate limiting): an outage of about a minute or
  two is ridden out, where boto3's legacy default gives up after a few seconds.
- Azure Blob: the `AZURE_STORAGE_CONNECTION_STRING` environment variable (Beam reads it when
  `--azure_connection_string` is absent), or `--blob_service_endpoint` with Azure AD credentials.
- GCS: Application Default Credentials; with `STORAGE_EMULATOR_HOST` set, clients talk to that
  emulator anonymously.
"""

from __future__ import annotations

import os
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, S3Options

AZURE_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
# Standard mode waits rand(0..1) x 1, 2, 4, 8, 16, then 20 s between attempts: 16 attempts wait
# about 2 minutes on average, rarely under 1 (legacy: 5 attempts, 7.5 s on average).
S3_WRITE_ATTEMPTS = 16
S3_RETRY_MODES = ("standard", "adaptive")


def gcs_emulator_host() -> str | None:
    """The GCS emulator endpoint when STORAGE_EMULATOR_HOST is set (clients go there anonymously)."""
    return os.environ.get(GCS_EMULATOR_ENV) or None


def gcs_storage_client(options: PipelineOptions) -> Any:  # noqa: ANN401 - google.cloud.storage.Client
    """An anonymous client bound to STORAGE_EMULATOR_HOST when set, else None (Beam's default).

    Without this, Beam first looks for Application Default Credentials and retries for ~25 s
    on a machine that has none, although an emulator needs none."""
    if not gcs_emulator_host():
        return None
    from apache_beam.options.pipeline_options import GoogleCloudOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    project = options.view_as(GoogleCloudOptions).project or "emulator"
    return storage.Client(project=project, credentials=AnonymousCredentials())


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


def s3_store_client(options: PipelineOptions) -> Any:  # noqa: ANN401 - Beam's S3 client
    """Beam's S3 client wrapper over a boto3 client with the sink's retries (`s3_client`)."""
    from apache_beam.io.aws.clients.s3.boto3_client import Client

    # Beam builds its boto3 client without a retry config (boto3's legacy default: 5 attempts,
    # ~7 s); the wrapper has no way in for one, so its client is replaced once, at setup.
    store_client = Client(options)
    store_client.client = s3_client(options)
    return store_client
