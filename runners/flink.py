"""FlinkRunner profile: Flink 1.19 on EMR 7.4 (AWS) and on HDInsight 5.1 YARN (Azure).

Both clusters run a Beam Python worker pool on every node (EMR bootstrap action,
HDInsight script action), so the SDK harness is EXTERNAL at localhost:50000 and the
job is submitted as an uber jar to the Flink REST endpoint: no Java or Docker is
needed on the machine that runs `python -m pipelines.run`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence

from apache_beam.options.pipeline_options import (
    FlinkRunnerOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
)

from runners._common import ProfileError, explicit, fill_streaming, merge_flags, require, to_flags

RUNNER = "FlinkRunner"
SUPPORTED_FLINK_VERSIONS = tuple(FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS)
ENVIRONMENT_TYPES = ("EXTERNAL", "PROCESS", "DOCKER", "LOOPBACK")
DEFAULT_CHECKPOINT_MS = 60_000
MASTER_RE = r"(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})(/[A-Za-z0-9._/-]*)?|https?://[A-Za-z0-9.-]+(/[A-Za-z0-9._/-]*)?"
HOST_PORT_RE = r"[A-Za-z0-9.-]+:[0-9]{1,5}"


class FlinkCheckpointOptions(PipelineOptions):
    """Flink options Beam Python forwards to the Java runner but does not declare itself."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--checkpointing_interval",
            type=int,
            default=None,
            help="Milliseconds between Flink checkpoints (streaming); the Flink profile fills 60000.",
        )


def args_from_terraform(profile: Mapping[str, object]) -> list[str]:
    """Flags from one region of `terraform output -json runner_profiles` (infra/aws or infra/azure).

    EMR publishes the Flink REST address only once the YARN session runs (an S3 object,
    `flink_master_object`), so ``flink_master`` usually comes from args or overrides.
    """
    return to_flags(
        {
            "runner": RUNNER,
            "flink_master": profile.get("flink_master"),
            "flink_version": profile.get("flink_version"),
            "environment_type": profile.get("environment_type"),
            "environment_config": profile.get("environment_config"),
            "checkpointing_interval": profile.get("checkpointing_ms"),
            "source": profile.get("source"),
            "output": profile.get("output"),
            "dead_letter": profile.get("dead_letter"),
            "jurisdiction": profile.get("jurisdiction"),
            "sink_region": profile.get("region"),
        }
    )


def _master_hint(where: str | None) -> str:
    if where:
        return f"read it with `aws s3 cp {where} -` and pass --flink_master=URL."
    return (
        "pass the JobManager REST address, e.g. --flink_master=http://localhost:8088/proxy/APPLICATION_ID "
        "through an SSH tunnel (docs/runners.md), or [local] for a local mini-cluster."
    )


def apply_profile(options: PipelineOptions, *, flink_master_object: str | None = None) -> None:
    """Validate master, version, SDK environment and checkpointing; fill uber-jar submission.

    ``flink_master_object`` (EMR: where the running session published its address) only
    improves the message when --flink_master is missing.
    """
    flink = options.view_as(FlinkRunnerOptions)
    portable = options.view_as(PortableOptions)
    given = explicit(options)

    if flink.flink_master in (None, "", "[auto]"):
        raise ProfileError(f"--flink_master is missing: {_master_hint(flink_master_object)}")
    local = flink.flink_master == "[local]"
    if not local and not re.fullmatch(MASTER_RE, flink.flink_master):
        raise ProfileError(
            f"--flink_master={flink.flink_master} is malformed: use host:port or http://host:port/path."
        )

    if "flink_version" not in given:
        raise ProfileError(
            f"--flink_version is missing: Beam would default to {flink.flink_version}; pass the cluster's "
            "version, --flink_version=1.19 for EMR 7.4 and the HDInsight script action."
        )
    if flink.flink_version not in SUPPORTED_FLINK_VERSIONS:
        raise ProfileError(
            f"--flink_version={flink.flink_version} has no Beam job server; use one of "
            f"{', '.join(SUPPORTED_FLINK_VERSIONS)}."
        )

    require(
        portable.environment_type,
        "environment_type",
        "pass --environment_type=EXTERNAL --environment_config=localhost:50000 to use the worker pool "
        "the cluster runs on every node.",
    )
    env_type = portable.environment_type.upper()
    if env_type not in ENVIRONMENT_TYPES:
        raise ProfileError(
            f"--environment_type={portable.environment_type} is unknown; use one of {', '.join(ENVIRONMENT_TYPES)}."
        )
    portable.environment_type = env_type
    if env_type == "EXTERNAL":
        config = portable.environment_config or ""
        if not re.fullmatch(HOST_PORT_RE, config):
            raise ProfileError(
                f"--environment_config={config or '(missing)'} must be the worker pool's host:port with "
                "--environment_type=EXTERNAL, e.g. --environment_config=localhost:50000."
            )
    if env_type == "LOOPBACK" and not local:
        raise ProfileError(
            "--environment_type=LOOPBACK only works with --flink_master=[local]; use EXTERNAL on a cluster."
        )

    if not local and not flink.flink_submit_uber_jar:
        flink.flink_submit_uber_jar = True

    if fill_streaming(options):
        checkpoints = options.view_as(FlinkCheckpointOptions)
        if checkpoints.checkpointing_interval is None:
            checkpoints.checkpointing_interval = DEFAULT_CHECKPOINT_MS
        if not 1_000 <= checkpoints.checkpointing_interval <= 3_600_000:
            raise ProfileError(
                f"--checkpointing_interval={checkpoints.checkpointing_interval} must be 1000-3600000 ms; "
                f"{DEFAULT_CHECKPOINT_MS} is a good start."
            )
    if flink.parallelism is not None and flink.parallelism != -1 and flink.parallelism < 1:
        raise ProfileError(f"--parallelism={flink.parallelism} must be at least 1 (or -1 for Flink's default).")
    options.view_as(StandardOptions).runner = RUNNER


def build_options(
    profile: Mapping[str, object], *, args: Sequence[str] = (), **overrides: object
) -> PipelineOptions:
    """FlinkRunner options for one region of the AWS or Azure Terraform outputs."""
    options = PipelineOptions(merge_flags(args_from_terraform(profile), args, overrides))
    where = profile.get("flink_master_object")
    apply_profile(options, flink_master_object=str(where) if where else None)
    return options
