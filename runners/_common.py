"""Helpers shared by the runner profiles."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from runners.regions import REGIONS_ENV, load_regions, regions_path

UNBOUNDED_SCHEMES = ("kinesis", "eventhubs", "pubsub")


class ProfileError(ValueError):
    """A runner option that is missing or wrong; the message names the option and the fix."""


def to_flags(values: Mapping[str, object]) -> list[str]:
    """``{"max_num_workers": 5, "streaming": True}`` -> ``["--max_num_workers=5", "--streaming"]``."""
    flags: list[str] = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        if value is True:
            flags.append(f"--{name}")
        else:
            flags.append(f"--{name}={value}")
    return flags


def explicit(options: PipelineOptions) -> dict[str, object]:
    """Options given on the command line (or by a profile), not left at their defaults."""
    return options.get_all_options(drop_default=True, retain_unknown_options=True)


def pipeline_option(options: PipelineOptions, name: str) -> object:
    """The value of one of the pipeline's own options (--source, --jurisdiction, ...), None when unset.

    Runners do not import the pipeline, so its option classes may not be registered: unknown
    options are retained, as strings (a number given as --max_records=5 reads "5")."""
    return options.get_all_options(retain_unknown_options=True).get(name)


def require(value: object, option: str, fix: str) -> None:
    if value is None or value == "":
        raise ProfileError(f"--{option} is missing: {fix}")


def check_pattern(value: str, option: str, pattern: str, example: str) -> None:
    if not re.fullmatch(pattern, value):
        raise ProfileError(f"--{option}={value} is malformed: expected something like {example}.")


def source_is_unbounded(options: PipelineOptions) -> bool:
    """True when --source reads a stream and no --max_records/--max_read_time bounds it."""
    values = options.get_all_options(retain_unknown_options=True)
    source = str(values.get("source") or "")
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    bounded = values.get("max_records") is not None or values.get("max_read_time") is not None
    return scheme in UNBOUNDED_SCHEMES and not bounded


def fill_streaming(options: PipelineOptions) -> bool:
    """Turn --streaming on for an unbounded source; return the resulting streaming flag."""
    standard = options.view_as(StandardOptions)
    if not standard.streaming and source_is_unbounded(options):
        standard.streaming = True
    return bool(standard.streaming)


def check_region_in_jurisdiction(options: PipelineOptions, cloud: str, region: str, option: str) -> None:
    """Refuse workers outside --jurisdiction (runners.regions: allowed_regions.<j>.<cloud>, any case)."""
    jurisdiction = pipeline_option(options, "jurisdiction")
    if not jurisdiction:
        return
    path = regions_path()
    try:
        regions = load_regions(path)
    except OSError as err:
        raise ProfileError(
            f"--jurisdiction={jurisdiction} needs infra/regions.json ({path}: {err.strerror}): "
            f"set {REGIONS_ENV} to its path."
        ) from None
    jurisdiction = str(jurisdiction)
    if jurisdiction not in regions.allowed:
        raise ProfileError(
            f"--jurisdiction={jurisdiction} is not in {path}; use one of {', '.join(regions.jurisdictions())}."
        )
    if not regions.allows(jurisdiction, cloud, region):
        raise ProfileError(
            f"--{option}={region} puts the workers outside jurisdiction {jurisdiction}; "
            f"use one of {', '.join(regions.allowed_in(jurisdiction, cloud))}."
        )


def merge_flags(base: Sequence[str], args: Sequence[str], overrides: Mapping[str, object]) -> list[str]:
    """Terraform flags, then user args, then keyword overrides: argparse keeps the last value."""
    return [*base, *args, *to_flags(overrides)]


def region_flags(profile: Mapping[str, object] | None) -> dict[str, object]:
    """The flags that point a local run at a deployed region's stream and bucket (each optional)."""
    profile = profile or {}
    return {
        "source": profile.get("source"),
        "output": profile.get("output"),
        "dead_letter": profile.get("dead_letter"),
        "jurisdiction": profile.get("jurisdiction"),
        "sink_region": profile.get("region"),
    }


def built(flags: Sequence[str], apply_profile: Callable[[PipelineOptions], None]) -> PipelineOptions:
    """Options parsed from ``flags``, then filled and validated by a profile's ``apply_profile``."""
    options = PipelineOptions(list(flags))
    apply_profile(options)
    return options
