"""--source URI -> a PTransform producing RawBatches: the one place where the command line meets
the connectors.

The connectors in io_connectors/ take explicit constructor arguments and know nothing of the
command line. For each stream scheme a module here (kinesis, eventhubs, pubsub), imported only
when used, maps the PipelineOptions and the run's AfterRun (resume positions, held
acknowledgements) onto its connector: `check_uri(spec)` and
`source_from_uri(spec, options, after_run) -> PTransform`. Their cloud SDKs come with the
matching setup.py extra, so a missing SDK is reported with the install hint.
"""

from __future__ import annotations

import importlib
import os

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.after_run import AfterRun
from io_connectors.files import ReadFiles, match_files
from io_connectors.synthetic import ReadSynthetic, SyntheticConfig
from io_connectors.uri import SourceSpec, UriError, redact_text
from runners import runner_key

STREAM_CONNECTORS = {
    "kinesis": ("pipelines.adapters.kinesis", "aws"),
    "eventhubs": ("pipelines.adapters.eventhubs", "azure"),
    "pubsub": ("pipelines.adapters.pubsub", "gcp"),
}


class SourceUnavailable(UriError):
    """The scheme is known but its connector or its SDK is not installed."""


def check_source(spec: SourceSpec) -> None:
    """Fail fast (before a pipeline is built) on a source that cannot be read."""
    if spec.scheme == "file":
        if os.path.isdir(spec.location):
            raise UriError(
                f"--source {spec.shown!r} is a directory; name its files with a glob, "
                f"e.g. file://{redact_text(spec.location.rstrip('/'))}/*.jsonl."
            )
        try:
            paths = match_files(spec.location)
        except FileNotFoundError as err:
            raise UriError(f"--source {spec.shown!r}: {redact_text(str(err))}") from None
        directories = [path for path in paths if os.path.isdir(path)]
        if directories:
            raise UriError(
                f"--source {spec.shown!r} matches the directory {redact_text(directories[0])!r}; "
                "make the glob match files only, e.g. end it with *.jsonl."
            )
    elif spec.scheme == "synthetic":
        SyntheticConfig.from_spec(spec)
    else:
        module = _connector(spec)
        # The connector's own checks of its URI (shape, required parameters), still before any work.
        check_uri = getattr(module, "check_uri", None)
        if check_uri is not None:
            check_uri(spec)


def _connector(spec: SourceSpec):  # noqa: ANN202 - a module
    module_name, extra = STREAM_CONNECTORS[spec.scheme]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            raise SourceUnavailable(
                f"The {spec.scheme}:// source is not available in this version yet; "
                "use synthetic:// or file:// for now."
            ) from None
        raise SourceUnavailable(
            f"The {spec.scheme}:// source needs the Python package {err.name!r}; "
            f"install it with: pip install '.[{extra}]'"
        ) from None
    return module


def source_from_uri(spec: SourceSpec, options: PipelineOptions, input_format: str,
                    after_run: AfterRun | None = None) -> beam.PTransform:
    """The read transform for a parsed --source. `after_run` receives what a stream read must hold
    until the run succeeds; without one (a graph built but not run by pipelines.run) a fresh one is
    used, and nothing it holds is ever committed."""
    if spec.scheme == "synthetic":
        # Beam's DirectRunner (FnApiRunner, BundleBasedDirectRunner) takes a paced read whole;
        # the other runners resume a read that checkpoints between its batches.
        return ReadSynthetic(SyntheticConfig.from_spec(spec), resumable=runner_key(options) != "direct")
    if spec.scheme == "file":
        return ReadFiles(spec.location, input_format)
    return _connector(spec).source_from_uri(spec, options, after_run if after_run is not None else AfterRun())
