"""SparkRunner profile: batch backfills on the HDInsight 5.1 Spark cluster (Azure).

Beam's portable Spark runner is batch-only for Python, so streaming runs on Flink
(runners/flink.py); this profile refuses unbounded reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from apache_beam.options.pipeline_options import (
    PipelineOptions,
    PortableOptions,
    SparkRunnerOptions,
    StandardOptions,
)

from runners._common import ProfileError, explicit, merge_flags, require, source_is_unbounded, to_flags

RUNNER = "SparkRunner"
ENVIRONMENT_TYPES = ("EXTERNAL", "PROCESS", "DOCKER", "LOOPBACK")
MASTER_RE = r"yarn|spark://[A-Za-z0-9.-]+:[0-9]{1,5}|local(\[([0-9]+|\*)\])?"
REST_RE = r"https?://[A-Za-z0-9.-]+:[0-9]{1,5}"
HOST_PORT_RE = r"[A-Za-z0-9.-]+:[0-9]{1,5}"


def args_from_terraform(profile: Mapping[str, object]) -> list[str]:
    """Flags from one region of `terraform -chdir=infra/azure output -json runner_profiles`."""
    return to_flags(
        {
            "runner": RUNNER,
            "spark_master_url": profile.get("spark_master_url"),
            "environment_type": profile.get("environment_type"),
            "environment_config": profile.get("environment_config"),
            "output": profile.get("output"),
            "dead_letter": profile.get("dead_letter"),
            "jurisdiction": profile.get("jurisdiction"),
            "sink_region": profile.get("region"),
        }
    )


def apply_profile(options: PipelineOptions) -> None:
    """Validate master URL, SDK environment and boundedness of the read."""
    spark = options.view_as(SparkRunnerOptions)
    portable = options.view_as(PortableOptions)
    standard = options.view_as(StandardOptions)

    if "spark_master_url" not in explicit(options):
        raise ProfileError(
            "--spark_master_url is missing: use --spark_master_url=yarn on the HDInsight head node "
            "(docs/runners.md), or local[*] for a local run."
        )
    if not re.fullmatch(MASTER_RE, spark.spark_master_url):
        raise ProfileError(
            f"--spark_master_url={spark.spark_master_url} is malformed: use yarn, spark://host:7077 or local[*]."
        )
    if spark.spark_submit_uber_jar:
        require(spark.spark_rest_url, "spark_rest_url", "--spark_submit_uber_jar needs the REST URL, e.g. http://host:6066.")
        if not re.fullmatch(REST_RE, spark.spark_rest_url):
            raise ProfileError(f"--spark_rest_url={spark.spark_rest_url} is malformed: use http://host:6066.")

    if standard.streaming or source_is_unbounded(options):
        raise ProfileError(
            "--streaming is not supported by the portable SparkRunner for Python: bound the read with "
            "--max_records or --max_read_time for a backfill, or use --runner=FlinkRunner for streaming."
        )

    require(
        portable.environment_type,
        "environment_type",
        "pass --environment_type=EXTERNAL --environment_config=localhost:50000 to use the worker pool "
        "the HDInsight script action runs on every node.",
    )
    env_type = portable.environment_type.upper()
    if env_type not in ENVIRONMENT_TYPES:
        raise ProfileError(
            f"--environment_type={portable.environment_type} is unknown; use one of {', '.join(ENVIRONMENT_TYPES)}."
        )
    portable.environment_type = env_type
    if env_type == "EXTERNAL" and not re.fullmatch(HOST_PORT_RE, portable.environment_config or ""):
        raise ProfileError(
            f"--environment_config={portable.environment_config or '(missing)'} must be the worker pool's "
            "host:port with --environment_type=EXTERNAL, e.g. localhost:50000."
        )
    if env_type == "LOOPBACK" and not spark.spark_master_url.startswith("local"):
        raise ProfileError("--environment_type=LOOPBACK only works with a local[*] master; use EXTERNAL on YARN.")
    standard.runner = RUNNER


def build_options(
    profile: Mapping[str, object], *, args: Sequence[str] = (), **overrides: object
) -> PipelineOptions:
    """SparkRunner options for one region of the Azure Terraform outputs (batch backfill)."""
    options = PipelineOptions(merge_flags(args_from_terraform(profile), args, overrides))
    apply_profile(options)
    return options
