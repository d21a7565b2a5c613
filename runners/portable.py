"""PortableRunner profile: submit the job to a running Beam job server (`--job_endpoint HOST:PORT`).

Locally that is Prism started as a job server (`.cache/runners/bin/prism --job_port 8073`, see
docs/runners.md); the SDK harness then runs in this process (LOOPBACK), so nothing is staged and
no Docker is needed. A remote job server cannot reach a LOOPBACK worker, so it needs an explicit
EXTERNAL, PROCESS or DOCKER environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from runners._common import ProfileError, built, fill_streaming, merge_flags, region_flags, require, to_flags

RUNNER = "PortableRunner"
ENVIRONMENT_TYPES = ("LOOPBACK", "EXTERNAL", "PROCESS", "DOCKER")
HOST_PORT_RE = r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def args_from_terraform(profile: Mapping[str, object] | None = None) -> list[str]:
    """Flags for a run on a job server against a deployed region's stream and bucket (both optional)."""
    job_endpoint = (profile or {}).get("job_endpoint")
    return to_flags({"runner": RUNNER, "job_endpoint": job_endpoint, **region_flags(profile)})


def check_endpoint(value: str, option: str) -> str:
    """The host of a HOST:PORT `value`; ProfileError naming `option` when it has another shape."""
    found = re.fullmatch(HOST_PORT_RE, value)
    if not found or not 1 <= int(found["port"]) <= 65535:
        raise ProfileError(
            f"--{option}={value} is malformed: expected HOST:PORT with a port 1-65535, e.g. --{option}=localhost:8073."
        )
    return found["host"]


def check_environment(options: PipelineOptions, *, local: bool) -> None:
    """Fill LOOPBACK for a job server on this machine; otherwise require a known environment type."""
    portable = options.view_as(PortableOptions)
    if not portable.environment_type:
        if not local:
            raise ProfileError(
                "--environment_type is missing: a remote job server cannot reach this process (LOOPBACK); pass "
                "--environment_type=EXTERNAL --environment_config=HOST:PORT of a worker pool, or DOCKER."
            )
        portable.environment_type = "LOOPBACK"
    env_type = portable.environment_type.upper()
    if env_type not in ENVIRONMENT_TYPES:
        raise ProfileError(
            f"--environment_type={portable.environment_type} is unknown; use one of {', '.join(ENVIRONMENT_TYPES)}."
        )
    portable.environment_type = env_type
    if env_type == "LOOPBACK" and not local:
        raise ProfileError(
            "--environment_type=LOOPBACK only works with a job server on this machine (localhost); "
            "use EXTERNAL with a worker pool the job server can reach."
        )
    if env_type == "EXTERNAL":
        require(
            portable.environment_config,
            "environment_config",
            "--environment_type=EXTERNAL needs the worker pool's HOST:PORT, e.g. --environment_config=localhost:50000.",
        )
        check_endpoint(portable.environment_config, "environment_config")


def apply_profile(options: PipelineOptions) -> None:
    """Validate --job_endpoint and the SDK environment (LOOPBACK by default for a local job server)."""
    portable = options.view_as(PortableOptions)
    require(
        portable.job_endpoint,
        "job_endpoint",
        "pass the job server's HOST:PORT, e.g. --job_endpoint=localhost:8073 for Prism started with "
        "`.cache/runners/bin/prism --job_port 8073` (docs/runners.md).",
    )
    host = check_endpoint(portable.job_endpoint, "job_endpoint")
    check_environment(options, local=host.lower() in LOCAL_HOSTS)
    fill_streaming(options)
    options.view_as(StandardOptions).runner = RUNNER


def build_options(
    profile: Mapping[str, object] | None = None, *, args: Sequence[str] = (), **overrides: object
) -> PipelineOptions:
    """PortableRunner options from an optional Terraform region profile, args and overrides."""
    return built(merge_flags(args_from_terraform(profile), args, overrides), apply_profile)
