"""CLI: `python -m pipelines.run [options]`; with no options it runs the seeded demo job.

Every Beam pipeline option (--runner, --streaming, --direct_num_workers, ...) is accepted
beside the analytics options listed by --help.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from types import FrameType
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from io_connectors.after_run import AfterRun, run_and_commit
from io_connectors.metrics import LIVE
from io_connectors.read_core import resume_reading, stop_reading
from io_connectors.uri import UriError, redact_text, redact_uri
from pipelines.analytics import build_pipeline
from pipelines.config import ConfigError, JobConfig, build_config
from pipelines.metrics_server import MetricsServer, MetricsServerError
from pipelines.options import add_all_arguments
from pipelines.progress import CLEAR_LINE, OperationsOptions, Progress
from runners import ProfileError, apply_profile, runner_key
from runners.direct import local_runner
from transforms.sinks import NAMESPACE

DESCRIPTION = """Windowed analytics over a regional event stream, written to object storage.
Reads events, assigns event time, aggregates count/sum/min/max/mean/p50/p95/p99/distinct_ids
per window and dimensions, writes Hive-partitioned files, and sends undecodable records to
dead letters. With no options: DirectRunner on 100k seeded synthetic events -> ./output/.
Any Beam pipeline option (--runner, --streaming, --direct_num_workers, ...) also works."""


def _help_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.run", usage="%(prog)s [options]", description=DESCRIPTION
    )
    add_all_arguments(parser)
    beam_group = parser.add_argument_group("common Beam options (all others are accepted too)")
    beam_group.add_argument(
        "--runner",
        help="DirectRunner (default), PrismRunner (Beam's local portable runner, installed by `make install`), "
        "PortableRunner (a running job server, with --job_endpoint), DataflowRunner, FlinkRunner or SparkRunner.",
    )
    beam_group.add_argument(
        "--job_endpoint", help="PortableRunner: the job server's HOST:PORT, e.g. localhost:8073 (docs/runners.md)."
    )
    beam_group.add_argument(
        "--prism_location",
        help="PrismRunner: path of the prism binary; default: the one `make install` put in .cache/runners/bin.",
    )
    beam_group.add_argument(
        "--streaming", action="store_true", help="Run in streaming mode (windows, triggers and panes as events arrive)."
    )
    beam_group.add_argument(
        "--direct_num_workers",
        type=int,
        help="DirectRunner parallelism (use with --direct_running_mode=multi_processing).",
    )
    return parser


def parse_options(argv: Sequence[str]) -> PipelineOptions:
    # argparse validates types and choices of our options with a one-line usage error.
    _help_parser().parse_known_args(argv)
    options = PipelineOptions(list(argv))
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    return options


def prepare_job(options: PipelineOptions) -> JobConfig:
    """Runner profile applied, every option validated; raises ConfigError or ProfileError."""
    apply_profile(options)
    return build_config(options)


def summarize(result: beam.runners.runner.PipelineResult, config: JobConfig, seconds: float) -> str:
    counters: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + (value or 0)
    read = counters.get("records_read", 0)
    rate = read / seconds if seconds > 0 else 0.0
    # Windows are counted on the bounded path only; streaming panes are in the files.
    windows = f"{counters['windows_written']:>12,}" if "windows_written" in counters else f"{'-':>12}"
    lines = [
        f"records read      {read:>12,}  ({rate:,.0f} records/s over {seconds:.1f} s)",
        f"events decoded    {counters.get('events_decoded', 0):>12,}",
        f"dead letters      {counters.get('dead_letters', 0):>12,}  -> {config.dead_letter.path}",
        f"windows           {windows}",
        f"aggregates        {counters.get('aggregates_written', 0):>12,}  "
        f"in {counters.get('files_written', 0):,} {config.output_format} files -> {config.output.path}",
    ]
    # Input no record could be read from (each part is also a dead letter): shown only when there was some.
    from transforms.preaggregate import RECORDS_UNREADABLE, UNREADABLE_COUNTERS, UNREADABLE_UNCOUNTED

    parts = [(kind, counters.get(name, 0)) for kind, name in UNREADABLE_COUNTERS.items()]
    if any(count for _, count in parts):
        lost, uncounted = counters.get(RECORDS_UNREADABLE, 0), counters.get(UNREADABLE_UNCOUNTED, 0)
        amount = f"{lost:,}" if not uncounted else "unknown" if not lost else f"at least {lost:,}"
        where = ", ".join(f"{count:,} {kind}{'' if count == 1 else 's'}" for kind, count in parts if count)
        unknown = f" (count unknown in {uncounted:,})" if uncounted and lost else ""
        lines.insert(3, f"unreadable        {amount:>12}  records in {where}{unknown}")
    if config.streaming_path:
        lines.append("(streaming: the local runner's committed metrics can under-report; the files are complete)")
    return "\n".join(lines)


def reading_line(config: JobConfig) -> str:
    """What the job reads and writes, with any secret in the URIs replaced by ***."""
    return (
        f"Reading {config.source.shown} ({config.input_format}), windows {config.window}, "
        f"writing {config.output_format} to {redact_uri(config.output.path)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = parse_options(argv)
    try:
        config = prepare_job(options)
        runner = local_runner(options, config.early_firing_s is not None, config.source.scheme)
        pipeline = beam.Pipeline(runner=runner, options=options)
        # Connectors check their options where the graph is built; that is still before any work.
        after_run = AfterRun()
        build_pipeline(pipeline, config, after_run)
        LIVE.reset()
        server, progress = live_views(options)
    except (ConfigError, ProfileError, UriError, MetricsServerError) as err:
        print(f"error: {redact_text(str(err))}", file=sys.stderr)
        return 2
    print(reading_line(config), file=sys.stderr)
    if server:
        print(f"metrics: {server.url}", file=sys.stderr)
    started = time.monotonic()
    stop = StopOnInterrupt() if runner_key(options) in LOCAL_RUNNERS else None
    try:
        if stop:
            stop.install()
        if progress:
            progress.start()
        # Positions and held acknowledgements are committed only once the run has succeeded.
        result = pipeline.run()
        if stop:
            stop.install()  # Beam's job server puts its own handler in place when it starts
        run_and_commit(result, after_run)
    except KeyboardInterrupt:
        print("stopped at once: open windows were not written, and no read position or acknowledgement "
              "was committed (the next run reads those records again)", file=sys.stderr)
        return 130
    finally:
        if stop:
            stop.uninstall()
        if progress:
            progress.stop()  # clears the line before the summary
        if server:
            server.stop()
    print(summarize(result, config, time.monotonic() - started))
    return 0


# Runners whose stream readers run in this process, so that Ctrl-C can ask them to finish.
LOCAL_RUNNERS = ("direct", "prism")


def live_views(options: PipelineOptions) -> tuple[MetricsServer | None, Progress | None]:
    """The metrics endpoint (started: a port in use fails here, before the run) and the progress line
    (not yet started) of a local run whose workers count into LIVE in this process; raises
    MetricsServerError for --metrics_port where this process cannot see the metrics."""
    ops = options.view_as(OperationsOptions)
    key = runner_key(options)
    # Multi-process DirectRunner workers count in their own processes; Beam reports them only at the end.
    separate = key == "direct" and options.view_as(DirectOptions).direct_running_mode == "multi_processing"
    in_process = key in LOCAL_RUNNERS and not separate
    server = None
    if ops.metrics_port is not None:
        if not in_process:
            raise MetricsServerError(
                "--metrics_port serves the metrics of a run whose workers run in this process: DirectRunner "
                "(not --direct_running_mode=multi_processing) or PrismRunner. Elsewhere the runner exports them "
                "(Flink's Prometheus reporter, Dataflow's Cloud Monitoring): see docs/operations.md."
            )
        server = MetricsServer(ops.metrics_port)
        server.start()
    progress = Progress(sys.stderr) if ops.progress == "on" and in_process else None
    return server, progress


class StopOnInterrupt:
    """Ctrl-C (SIGINT) on a local run: the first stops the stream reads (read_core.stop_reading), so
    the runner closes and writes every open window and the run ends as a bounded one does, with its
    positions and acknowledgements committed; a second stops at once, committing nothing."""

    def __init__(self) -> None:
        self._previous: Any = signal.getsignal(signal.SIGINT)
        self._original = self._previous
        self.requested = False
        self._hard = False

    def install(self) -> None:
        current = signal.getsignal(signal.SIGINT)
        if current is not self:
            self._previous = current
            signal.signal(signal.SIGINT, self)

    def uninstall(self) -> None:
        if signal.getsignal(signal.SIGINT) is self:
            signal.signal(signal.SIGINT, self._original)
        resume_reading()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            self.requested = True
            stop_reading()
            # On a terminal, erase the progress line first so that the message starts a line of its own.
            print(f"{CLEAR_LINE if sys.stderr.isatty() else ''}stopping: the reads end, open windows are written, "
                  "then positions and acknowledgements are committed (Ctrl-C again to stop at once)",
                  file=sys.stderr, flush=True)
            return
        if self._hard:  # Beam's handler (the job server's) hands the signal back here
            raise KeyboardInterrupt
        self._hard = True
        if callable(self._previous) and self._previous is not signal.default_int_handler:
            self._previous(signum, frame)  # Beam's: stops the job server
        raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
