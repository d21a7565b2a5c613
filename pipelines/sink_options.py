"""Options of the sinks and of the sovereignty guard, and the sink checks made before any work.

No cloud SDK is imported, so that --help lists these options where one is missing. How
the stores are reached at run time is in transforms/store_clients.py. Credentials never come
from the command line (process lists, shell history and job graphs keep it):

- S3: keys come from the AWS credential chain; `--s3_access_key_id`, `--s3_secret_access_key`
  and `--s3_session_token` are refused.
- Azure Blob: a connection string on the command line (`--azure_connection_string`) is
  refused: it carries the account key; export AZURE_STORAGE_CONNECTION_STRING instead.
- Any other option whose name says it holds a secret (password, token, key, ...), or whose
  value carries one (user:password@, a SAS signature), is refused too.

Local sinks are checked before any work: the directory must be creatable and writable.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.uri import is_secret_name, redact_uri
from pipelines.options import ConfigError
from transforms.store_clients import AZURE_CONNECTION_STRING_ENV, GCS_EMULATOR_ENV, S3_WRITE_ATTEMPTS


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
    """Refuse options that would put a secret on the command line (raises ConfigError); the
    message names the option, never its value."""
    given = options.get_all_options(drop_default=True, retain_unknown_options=True)
    for name, value in given.items():
        if value in (None, False, "") or name.endswith(_REFERENCE_SUFFIXES):
            continue
        if name in SECRET_OPTIONS:
            raise ConfigError(
                f"--{name} puts a credential on the command line, where process lists, shell history and "
                f"job graphs keep it; unset it and {SECRET_OPTIONS[name]}."
            )
        if is_secret_name(name):
            raise ConfigError(
                f"--{name} looks like a secret, which the command line must not carry (process lists, shell "
                "history and job graphs keep it); remove it and provide the credential through the environment "
                "or a credential file (see docs/storage.md and docs/reliability.md)."
            )
        texts = value if isinstance(value, (list, tuple)) else [value]
        for text in texts:
            if not isinstance(text, str) or redact_uri(text) == text:
                continue
            # An endpoint with user:password@, a SAS token (sig=) or a connection-string key inside.
            raise ConfigError(
                f"--{name} {redact_uri(text)!r} carries a credential (a password before @, or a SAS signature or "
                "shared access key parameter), which the command line must not carry; remove it and provide the "
                "credential through the environment or a credential file (see docs/storage.md and docs/reliability.md)."
            )


def check_local_sink(path: str, option: str) -> None:
    """Refuse, before any work, a local --output/--dead_letter that cannot be written: an existing
    file, a path under a file, or a place where no file can be created (ConfigError)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(
            f"{option} {path!r} is an existing file, not a directory; give a directory (new or existing) "
            "for the files it receives."
        )
    ancestor = path
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ConfigError(
            f"{option} {path!r} cannot be created because {ancestor!r} is a file, not a directory; "
            "choose a path under a directory."
        )
    try:
        # Create and remove a file rather than trust os.access: root ignores mode bits, but not
        # read-only mounts, and some file systems (/proc) refuse new files whatever the mode.
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=ancestor)
    except OSError as err:
        raise ConfigError(
            f"{option} {path!r} is not writable: no file can be created in {ancestor!r} ({err.strerror}); "
            "choose a writable directory or fix its permissions."
        ) from None
    os.close(handle)
    os.unlink(probe)
