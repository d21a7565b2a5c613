"""DirectRunner profile: local runs of the same pipeline."""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apache_beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from runners._common import ProfileError, built, merge_flags, region_flags, to_flags

RUNNER = "DirectRunner"
LOG = logging.getLogger(__name__)
RUNNING_MODES = ("in_memory", "multi_processing")


def args_from_terraform(profile: Mapping[str, object] | None = None) -> list[str]:
    """Flags for a local run against a deployed region's stream and bucket (both optional)."""
    return to_flags({"runner": RUNNER, **region_flags(profile)})


def apply_profile(options: PipelineOptions) -> None:
    """Validate the DirectRunner options; multi_threading is refused (it lost output groups here)."""
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = RUNNER
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode not in RUNNING_MODES:
        raise ProfileError(
            f"--direct_running_mode={direct.direct_running_mode} is not supported by this pipeline "
            "(multi_threading lost 1-2% of output groups in tests); use in_memory or multi_processing."
        )
    if direct.direct_num_workers is None or direct.direct_num_workers < 0:
        raise ProfileError(
            f"--direct_num_workers={direct.direct_num_workers} must be 0 (one per core) or a positive number."
        )


def build_options(
    profile: Mapping[str, object] | None = None, *, args: Sequence[str] = (), **overrides: object
) -> PipelineOptions:
    """DirectRunner options from an optional Terraform region profile, args and overrides."""
    return built(merge_flags(args_from_terraform(profile), args, overrides), apply_profile)


def bound_bundle_metrics() -> bool:
    """Keep the FnApiRunner's per-stage metrics a list instead of a chain of generators.

    Beam 2.77's FnApiRunner folds each bundle's monitoring infos into the previous ones with
    `consolidate(itertools.chain(new, previous))`, which is a generator: nothing is consumed
    until the run ends, so every bundle's metrics stay referenced. A bounded run has few
    bundles, but an unbounded stream read makes several a second and grew by ~6 MiB/s at
    500 events/s. Materializing each consolidation keeps one entry per metric.

    Applied only on the Beam releases whose source was read to fold that way
    (CHAINED_METRICS_BEAM) and while `consolidate_monitoring_infos` is still a generator
    function; elsewhere it logs once and leaves Beam alone. Idempotent. Returns whether the
    bound is in place."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    consolidate = fn_runner.consolidate_monitoring_infos
    if getattr(consolidate, "materialized", False):
        return True
    why_not = _not_chained(consolidate, apache_beam.__version__)
    if why_not is not None:
        _skip_once(why_not)
        return False

    def materialized(infos: Iterable[Any]) -> list[Any]:
        return list(consolidate(infos))

    materialized.materialized = True  # type: ignore[attr-defined]
    fn_runner.consolidate_monitoring_infos = materialized
    return True


# Beam releases (major, minor) whose FnApiRunner.run_stages folds bundle metrics through
# `consolidate_monitoring_infos(itertools.chain(...))`, checked in their source.
CHAINED_METRICS_BEAM = ((2, 77),)


def _not_chained(consolidate: Any, version: str) -> str | None:  # noqa: ANN401 - Beam's function
    """None when this Beam folds metrics into a lazy chain, as `bound_bundle_metrics` expects; else why not."""
    found = re.match(r"(\d+)\.(\d+)", version)
    release = (int(found[1]), int(found[2])) if found else None
    if release not in CHAINED_METRICS_BEAM:
        checked = ", ".join(f"{major}.{minor}" for major, minor in CHAINED_METRICS_BEAM)
        return f"Beam {version} is not a release whose metrics folding was checked ({checked})"
    if not inspect.isgeneratorfunction(consolidate):
        return f"Beam {version}'s fn_runner.consolidate_monitoring_infos is no longer a generator function"
    return None


@functools.cache
def _skip_once(why_not: str) -> None:
    LOG.warning(
        "Local runner: per-bundle metrics left as Beam keeps them: %s; a long stream read on the local "
        "runner may grow in memory.",
        why_not,
    )


def finalizes_before_writing(options: PipelineOptions) -> bool:
    """Whether readers should hold acknowledgements and offset commits until the run succeeds.

    True for the DirectRunner in one process (the default `in_memory` mode): its FnApiRunner
    finalizes a read bundle as soon as the read stage has processed it, but writes windows only
    after the whole read, so acknowledging at finalization could lose data if the process died
    in between. In `multi_processing` mode the reads run in worker processes, which cannot see
    the run's end. Prism likewise finalizes once a bundle's output is in its memory, not written,
    and runs the readers in this process (LOOPBACK). Other runners finalize after a durable checkpoint."""
    from runners import runner_key

    key = runner_key(options)
    return key == "prism" or (key == "direct" and options.view_as(DirectOptions).direct_running_mode == "in_memory")


def local_runner(options: PipelineOptions, early_firing: bool, source_scheme: str) -> object | None:
    """The runner object for a local job, or None to let Beam's DirectRunner choose.

    Beam's DirectRunner runs this pipeline on the FnApiRunner, which has no processing-time
    clock: a processing-time trigger (--early_firing) fails there. Such jobs run on Beam's
    streaming BundleBasedDirectRunner instead, which fires them; it cannot run the stream
    connectors' splittable reads, so those need a streaming runner (Flink, Dataflow).
    Every local job also gets `bound_bundle_metrics`."""
    standard = options.view_as(StandardOptions)
    if (standard.runner or RUNNER) != RUNNER:
        return None
    bound_bundle_metrics()
    if not early_firing:
        return None
    if source_scheme not in ("synthetic", "file"):
        raise ProfileError(
            f"--early_firing with a {source_scheme}:// source needs a runner that fires processing-time "
            "triggers during a stream read: locally --runner PrismRunner (see docs/runners.md, Local streaming), "
            "or FlinkRunner, DataflowRunner; or drop --early_firing on the DirectRunner."
        )
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

    standard.streaming = True
    return BundleBasedDirectRunner()
