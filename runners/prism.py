"""PrismRunner profile: Beam's portable local runner (a Go binary), installed by `make install`.

`make install` builds Prism at the Beam release of setup.py into `.cache/runners/bin/prism`
(git-ignored) and writes that release to `.cache/runners/prism.version`. The profile points
Beam at that binary (`--prism_location`), because Beam would otherwise download it from GitHub
on first use. Beam starts it as a job server for the run and stops it when the process ends;
the SDK harness runs in this process (LOOPBACK), so nothing is staged and no Docker is needed.
"""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

import apache_beam
from apache_beam.options.pipeline_options import PipelineOptions, PrismRunnerOptions, StandardOptions

from runners._common import ProfileError, built, explicit, fill_streaming, merge_flags, region_flags, to_flags
from runners.portable import check_environment

RUNNER = "PrismRunner"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "runners"
PRISM_BIN = CACHE / "bin" / "prism"
PRISM_STAMP = CACHE / "prism.version"  # the release `make install` built, e.g. v2.77.0


def expected_version() -> str:
    """The Prism release that matches the installed Beam SDK (the Makefile pins the same one)."""
    return f"v{apache_beam.__version__}"


def installed_binary() -> Path:
    """The cached Prism binary; ProfileError naming `make install` when it is missing or stale."""
    wanted = expected_version()
    found = PRISM_STAMP.read_text(encoding="utf-8").strip() if PRISM_STAMP.is_file() else None
    if PRISM_BIN.is_file() and found == wanted:
        return PRISM_BIN
    if found and PRISM_BIN.is_file():
        problem = f"the Prism in {PRISM_BIN} is {found}, not {wanted} (the Beam SDK's release)"
    else:
        problem = f"Prism {wanted} is not installed at {PRISM_BIN}"
    go = "" if shutil.which("go") else " (Go is not on PATH: install Go 1.26 or newer first)"
    raise ProfileError(
        f"--runner=PrismRunner: {problem}; run `make install`{go}, or pass --prism_location=PATH of a prism binary."
    )


def _check_location(location: str) -> None:
    """A local --prism_location must exist: Beam would otherwise try to download it."""
    if urllib.parse.urlparse(location).scheme in ("", "file") and not Path(location.removeprefix("file://")).is_file():
        raise ProfileError(
            f"--prism_location={location} is not a file; run `make install` and drop the option to use "
            f"{PRISM_BIN}, or pass the path of a prism binary."
        )


def args_from_terraform(profile: Mapping[str, object] | None = None) -> list[str]:
    """Flags for a local Prism run against a deployed region's stream and bucket (both optional)."""
    return to_flags({"runner": RUNNER, **region_flags(profile)})


def apply_profile(options: PipelineOptions) -> None:
    """Point Beam at the installed Prism, run the SDK harness in this process, fill --streaming."""
    prism = options.view_as(PrismRunnerOptions)
    if prism.prism_location:
        _check_location(prism.prism_location)
    else:
        prism.prism_location = str(installed_binary())
    # Prism's own start/finish lines would interleave with the run's summary; warnings still show.
    if "prism_log_level" not in explicit(options):
        prism.prism_log_level = "warn"
    check_environment(options, local=True)
    fill_streaming(options)
    options.view_as(StandardOptions).runner = RUNNER


def build_options(
    profile: Mapping[str, object] | None = None, *, args: Sequence[str] = (), **overrides: object
) -> PipelineOptions:
    """PrismRunner options from an optional Terraform region profile, args and overrides."""
    return built(merge_flags(args_from_terraform(profile), args, overrides), apply_profile)
