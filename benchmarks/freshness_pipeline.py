"""Runs the pipeline exactly as `python -m pipelines.run` builds it, on Beam's streaming
DirectRunner (BundleBasedDirectRunner), for freshness measurements.

    python -m benchmarks.freshness_pipeline [--sdf_checkpoint_s S] PIPELINE_OPTIONS...

Why not the CLI: the DirectRunner picks the FnApiRunner for every pipeline without TestStream
or Beam's ReadFromPubSub, even with --streaming; the FnApiRunner releases a GroupByKey only
when its input is finished, so an unbounded read shows no pane at all until it ends. The
BundleBasedDirectRunner fires processing-time (early) panes while the read goes on.

That runner expands a splittable DoFn with a GroupByKey, which it refuses on an unbounded input
in the global window, i.e. on ReadFromKinesis' shard discovery while it follows resharding. For a
kinesis:// source this wrapper therefore builds the public ReadFromKinesis with
`follow_resharding=False` (the shards are listed once, a bounded step) and with `max_call_s` set
to --sdf_checkpoint_s: the same reader, without resharding discovery.

Beam 2.77's streaming BundleBasedDirectRunner also fails on any splittable DoFn ("Transform
node ...ProcessKeyedElements/GroupByKey... was not replaced as expected"): the GroupByKey that
its SDF expansion adds is expanded after the streaming GroupByKey overrides have run.
`_streaming_sdf_overrides` re-applies those overrides last. That runner's SDF path never calls
a splittable DoFn's setup() and predates `tracker.defer_remainder()` (see `_patched_sdf_runner`),
and it lets the watermark run ahead of a read before the read's first bundle commits (see
`_hold_unbounded_reads`). All of this is patched in this process only;
docs/benchmarks-freshness.md tells the whole story.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import weakref
from typing import Iterator, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.direct import direct_runner
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

from pipelines.analytics import add_analytics, build_pipeline
from pipelines.config import ConfigError, JobConfig
from pipelines.run import parse_options, prepare_job
from runners import ProfileError

STREAMING_OVERRIDES = ("StreamingGroupByKeyOverride", "StreamingGroupAlsoByWindowOverride")


def _streaming_sdf_overrides() -> None:
    original = direct_runner._get_transform_overrides  # noqa: SLF001 - patched in this process only

    def overrides(pipeline_options: PipelineOptions) -> list:
        found = original(pipeline_options)
        # The final GroupByKey override expands the SDF's GroupByKey; convert it for streaming too.
        return found + [o for o in found if type(o).__name__ in STREAMING_OVERRIDES]

    direct_runner._get_transform_overrides = overrides  # noqa: SLF001


def _patched_sdf_runner() -> None:
    """Make the runner set up splittable DoFns and keep the residual of `tracker.defer_remainder()`.

    The runner's ProcessFn never calls the splittable DoFn's setup(): it now does, once a DoFn.
    Beam's SDFProcessElementInvoker discards what `invoke_process` returns (the deferred
    residual) and checkpoints only from a timer, which outlives its call and then cuts the next
    call's restriction, dropping its residual: the read silently ends. This version takes the
    residual from `invoke_process` and sets no timer; the delay asked for is not honoured (the
    runner re-invokes at once). A call that comes sooner than a shard's 5 GetRecords a second
    returns its restriction untouched instead of letting the reader sleep. The runner asks for
    the deferral right after process() returns, before it iterates the outputs: the output
    handler now runs a generator's body at once.
    """
    from apache_beam.runners.direct import sdf_direct_runner

    process_fn_cls = sdf_direct_runner.ProcessFn
    set_up: weakref.WeakSet = weakref.WeakSet()

    def setup(self: object) -> None:
        # A ProcessFn is made per bundle around the same splittable DoFn: set that up only once.
        if self.sdf not in set_up:
            self.sdf.setup()
            set_up.add(self.sdf)

    process_fn_cls.setup = setup

    def handle_process_outputs(self: object, windowed_input_element: object, output_iter: object,
                               watermark_estimator: object = None) -> None:
        self.output_iter = list(output_iter or ())

    sdf_direct_runner._OutputHandler.handle_process_outputs = handle_process_outputs  # noqa: SLF001

    invoker_cls = sdf_direct_runner.SDFProcessElementInvoker
    from io_connectors.kinesis import MIN_CALL_INTERVAL_S

    last_call: dict[object, float] = {}

    def invoke_process_element(
        self: object,
        sdf_invoker: object,
        output_processor: object,
        element: object,
        restriction: object,
        watermark_estimator_state: object,
        *args: object,
        **kwargs: object,
    ) -> Iterator[object]:
        output_processor.reset()
        # Too early for this shard's next GetRecords: come back rather than let the reader sleep,
        # since this runner runs every step on one thread and a sleeping read stalls the others.
        key = element.value
        if time.monotonic() - last_call.get(key, -MIN_CALL_INTERVAL_S) < MIN_CALL_INTERVAL_S:
            yield invoker_cls.Result(residual_restriction=restriction)
            return
        last_call[key] = time.monotonic()
        residuals = sdf_invoker.invoke_process(
            element,
            additional_args=args,
            restriction=restriction,
            watermark_estimator_state=watermark_estimator_state,
        )
        yield from output_processor.output_iter
        if residuals:
            # residual_value: ((element, (restriction, estimator_state)), size)
            (_, (residual, _)), _ = residuals[0].residual_value.value
            yield invoker_cls.Result(residual_restriction=residual)
        else:
            yield invoker_cls.Result()

    invoker_cls.invoke_process_element = invoke_process_element


def _hold_unbounded_reads() -> None:
    """Hold the output watermark of the shard reads at -inf from the start.

    The runner registers a read's hold only when its first bundle commits; by then the watermark
    downstream has already jumped to +inf (the bounded shard list is done), every window counts
    as expired and each element is dropped. An unbounded read never finishes, so -inf is its
    true output watermark here. Not the shard listing: it ends, and a hold on it stalls the
    shuffle after it.
    """
    from apache_beam.runners.direct import watermark_manager

    manager_cls = watermark_manager.WatermarkManager
    original_init = manager_cls.__init__

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)
        for transform, marks in self._transform_to_watermarks.items():
            if transform.full_label.endswith("ReadShards/ProcessKeyedElements/ProcessElements"):
                marks.hold({b"unbounded-read": manager_cls.WATERMARK_NEG_INF})

    manager_cls.__init__ = __init__


def read_once_listed(config: JobConfig, options: PipelineOptions, slice_s: float) -> beam.PTransform:
    """The public Kinesis read of the command line, its shards listed once, checkpointing every
    `slice_s` seconds."""
    from io_connectors.after_run import AfterRun
    from io_connectors.kinesis import ReadFromKinesis
    from pipelines.adapters import kinesis as kinesis_adapter

    arguments = kinesis_adapter.read_arguments(config.source, options)
    return ReadFromKinesis(after_run=AfterRun(), **{**arguments, "max_call_s": slice_s, "follow_resharding": False})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.freshness_pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sdf_checkpoint_s",
        type=float,
        default=1.0,
        help="Seconds a Kinesis shard read runs before it checkpoints, which commits its output "
        "downstream (the runner's own SDF checkpoint interval is 1 s). Default: 1. Every other "
        "option goes to the pipeline (see python -m pipelines.run --help).",
    )
    known, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _patched_sdf_runner()
    _hold_unbounded_reads()
    options = parse_options(rest)
    try:
        config = prepare_job(options)
    except (ConfigError, ProfileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _streaming_sdf_overrides()
    pipeline = beam.Pipeline(runner=BundleBasedDirectRunner(), options=options)
    if config.source.scheme == "kinesis":
        add_analytics(pipeline | "Read" >> read_once_listed(config, options, known.sdf_checkpoint_s), config)
    else:
        build_pipeline(pipeline, config)
    # No runner-API round trip: it loses the runner's own replacement of splittable DoFns.
    pipeline.run(test_runner_api=False).wait_until_finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
