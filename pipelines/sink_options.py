"""Options of the object-storage sinks and of the sovereignty guard (imports only Beam).

Store connections reuse Beam's own settings, so that Beam's filesystems and the guard's
bucket look-ups always talk to the same endpoint:

- S3: Beam's `--s3_endpoint_url`, `--s3_region_name`, ... (S3Options); without them boto3's own
  configuration applies, `AWS_ENDPOINT_URL(_S3)` included, so an emulator such as moto needs
  only the environment. Keys come from the AWS credential chain: `--s3_access_key_id`,
  `--s3_secret_access_key` and `--s3_session_token` are refused. Writes retry in botocore's standard mode,
  16 attempts (`AWS_MAX_ATTEMPTS` / `max_attempts` in the AWS profile sets another number;
  `AWS_RETRY_MODE=adaptive` adds client-side rate limiting): an outage of about a minute or
  two is ridden out, where boto3's legacy default gives up after a few seconds.
- Azure Blob: the `AZURE_STORAGE_CONNECTION_STRING` environment variable (Beam reads it when
  `--azure_connection_string` is absent), or `--blob_service_endpoint` with Azure AD
  credentials. A connection string on the command line is refused: it carries the account
  key, and command lines end up in process lists, shell history and job graphs.
- GCS: Application Default Credentials; with `STORAGE_EMULATOR_HOST` set the sink talks to
  that emulator anonymously.

Any other option whose name says it holds a secret (password, token, key, ...) is refused too.
Local sinks are checked before any work: the directory must be creatable and writable.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, S3Options

from io_connectors.uri import is_secret_name, redact_uri

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
                "S3: Beam's --s3_endpoint_url/--s3_region_name options, or boto3's environment "
                "(AWS_ENDPOINT_URL, AWS_REGION, ...), keys from the AWS credential chain (never on the "
                "command line); writes retry in boto3's standard mode, "
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


AWS_CHAIN = (
    "the AWS credential chain instead: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) "
    "in the environment, or a profile in ~/.aws/credentials chosen with AWS_PROFILE"
)
# Options that would put a credential on the command line (process lists, shell history, job
# graphs), with where the credential goes instead.
SECRET_OPTIONS = {
    "azure_connection_string": f"export {AZURE_CONNECTION_STRING_ENV} instead",
    "s3_access_key_id": f"use {AWS_CHAIN} (the key id is refused with its secret key)",
    "s3_secret_access_key": f"use {AWS_CHAIN}",
    "s3_session_token": f"use {AWS_CHAIN}",
}
# Option names that look secret but name where a secret is (an environment variable, a file).
_REFERENCE_SUFFIXES = ("_env", "_file", "_path")


def check_sink_options(options: PipelineOptions) -> None:
    """Refuse options that would put a secret on the command line (raises SinkOptionError); the
    message names the option, never its value."""
    given = options.get_all_options(drop_default=True, retain_unknown_options=True)
    for name, value in given.items():
        if value in (None, False, "") or name.endswith(_REFERENCE_SUFFIXES):
            continue
        if name in SECRET_OPTIONS:
            raise SinkOptionError(
                f"--{name} puts a credential on the command line, where process lists, shell history and "
                f"job graphs keep it; unset it and {SECRET_OPTIONS[name]}."
            )
        if is_secret_name(name):
            raise SinkOptionError(
                f"--{name} looks like a secret, which the command line must not carry (process lists, shell "
                "history and job graphs keep it); remove it and provide the credential through the environment "
                "or a credential file (see docs/storage.md and docs/reliability.md)."
            )
        texts = value if isinstance(value, (list, tuple)) else [value]
        for text in texts:
            if not isinstance(text, str) or redact_uri(text) == text:
                continue
            # An endpoint with user:password@, a SAS token (sig=) or a connection-string key inside.
            raise SinkOptionError(
                f"--{name} {redact_uri(text)!r} carries a credential (a password before @, or a SAS signature or "
                "shared access key parameter), which the command line must not carry; remove it and provide the "
                "credential through the environment or a credential file (see docs/storage.md and docs/reliability.md)."
            )


def check_local_sink(path: str, option: str) -> None:
    """Refuse, before any work, a local --output/--dead_letter that cannot be written: an existing
    file, a path under a file, or a place where no file can be created (SinkOptionError)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise SinkOptionError(
            f"{option} {path!r} is an existing file, not a directory; give a directory (new or existing) "
            "for the files it receives."
        )
    ancestor = path
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise SinkOptionError(
            f"{option} {path!r} cannot be created because {ancestor!r} is a file, not a directory; "
            "choose a path under a directory."
        )
    try:
        # Create and remove a file rather than trust os.access: root ignores mode bits, but not
        # read-only mounts, and some file systems (/proc) refuse new files whatever the mode.
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=ancestor)
    except OSError as err:
        raise SinkOptionError(
            f"{option} {path!r} is not writable: no file can be created in {ancestor!r} ({err.strerror}); "
            "choose a writable directory or fix its permissions."
        ) from None
    os.close(handle)
    os.unlink(probe)


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
