"""Runner profiles: everything a Beam runner needs is decided here, never in transforms.

Each profile module (direct, prism, portable, dataflow, flink, spark) exposes:

* ``RUNNER``: the Beam runner name it serves;
* ``args_from_terraform(profile) -> list[str]``: Beam flags from one region of the
  ``runner_profiles`` Terraform output;
* ``build_options(profile, *, args=(), **overrides) -> PipelineOptions``: those flags,
  then ``args``, then ``overrides`` (later wins), filled and validated;
* ``apply_profile(options) -> None``: fills defaults into parsed options and raises
  :class:`ProfileError` with one sentence naming the option and the fix.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from runners._common import ProfileError

__all__ = ["ProfileError", "PROFILES", "apply_profile", "profile_for", "runner_key"]

# Runner name (lower case, without the "Runner" suffix) -> profile module.
PROFILES: dict[str, str] = {
    "direct": "runners.direct",
    "prism": "runners.prism",
    "portable": "runners.portable",
    "dataflow": "runners.dataflow",
    "flink": "runners.flink",
    "spark": "runners.spark",
}


def _key(runner_name: str | None) -> str:
    name = (runner_name or "DirectRunner").strip()
    name = name.rsplit(".", 1)[-1].lower()
    return name[: -len("runner")] if name.endswith("runner") else name


def runner_key(options: PipelineOptions) -> str:
    """The profile key of the options' runner ("direct" when unset), named or given as an object."""
    runner = options.view_as(StandardOptions).runner
    return _key(runner if isinstance(runner, str) or runner is None else type(runner).__name__)


def profile_for(runner_name: str | None) -> ModuleType:
    """Return the profile module of ``runner_name`` ("FlinkRunner", "flink", None = DirectRunner)."""
    key = _key(runner_name)
    if key not in PROFILES:
        known = ", ".join(f"{k.capitalize()}Runner" for k in PROFILES)
        raise ProfileError(f"--runner={runner_name} has no profile here; use one of {known}.")
    return importlib.import_module(PROFILES[key])


def apply_profile(options: PipelineOptions) -> None:
    """Fill and validate ``options`` with the profile of their ``--runner``."""
    profile_for(options.view_as(StandardOptions).runner).apply_profile(options)
