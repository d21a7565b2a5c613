"""Helpers shared by the runner profiles."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

# Registers the pipeline's own options (--source, --jurisdiction, ...) so profiles can read them.
import pipelines.options  # noqa: F401

UNBOUNDED_SCHEMES = ("kinesis", "eventhubs", "pubsub")
REGIONS_ENV = "REGIONS_JSON"


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


def regions_file() -> Path | None:
    """infra/regions.json: $REGIONS_JSON, else the repository copy next to this package."""
    candidates = [os.environ.get(REGIONS_ENV), Path(__file__).resolve().parents[1] / "infra" / "regions.json"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@lru_cache(maxsize=4)
def _load_regions(path: str) -> dict[str, object]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def check_region_in_jurisdiction(options: PipelineOptions, cloud: str, region: str, option: str) -> None:
    """Refuse workers outside --jurisdiction (regions.json allowed_regions.<j>.<cloud>)."""
    jurisdiction = options.get_all_options(retain_unknown_options=True).get("jurisdiction")
    if not jurisdiction:
        return
    path = regions_file()
    if path is None:
        raise ProfileError(
            f"--jurisdiction={jurisdiction} needs infra/regions.json: set {REGIONS_ENV} to its path."
        )
    allowed_by_j = _load_regions(str(path)).get("allowed_regions", {})
    if not isinstance(allowed_by_j, dict) or jurisdiction not in allowed_by_j:
        known = ", ".join(sorted(allowed_by_j)) if isinstance(allowed_by_j, dict) else ""
        raise ProfileError(f"--jurisdiction={jurisdiction} is not in {path}; use one of {known}.")
    allowed: Sequence[str] = allowed_by_j[jurisdiction].get(cloud, [])
    if region not in allowed:
        raise ProfileError(
            f"--{option}={region} puts the workers outside jurisdiction {jurisdiction}; "
            f"use one of {', '.join(allowed)}."
        )


def merge_flags(base: Sequence[str], args: Sequence[str], overrides: Mapping[str, object]) -> list[str]:
    """Terraform flags, then user args, then keyword overrides: argparse keeps the last value."""
    return [*base, *args, *to_flags(overrides)]
