"""Live progress of a local run: once a second, one updating line on a terminal, a log line otherwise.

Beam's local runners hand metrics back only when the run ends, so the line reads
`io_connectors.metrics.LIVE`, which the decoder, readers and writers of this process count into
while the job runs (the in-memory DirectRunner, and Prism's LOOPBACK workers).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Callable, TextIO

from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.metrics import (
    DEAD_LETTERS,
    FILES_WRITTEN,
    LIVE,
    RECORDS_READ,
    SOURCE_LAG_MS,
    WATERMARK_LAG_MS,
    LiveMetrics,
)

EVENTS_DECODED = "events_decoded"
CLEAR_LINE = "\r\x1b[K"  # carriage return, then erase to the end of the line


class OperationsOptions(PipelineOptions):
    """--progress and --metrics_port: what a local run shows and serves while it runs."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("operations (local runs)")
        group.add_argument(
            "--progress",
            default="on",
            choices=("on", "off"),
            help="on: once a second, records read, events/s, dead letters, watermark, the worst source lag and "
            "files written, as one updating line on a terminal or a log line on stderr otherwise "
            "(DirectRunner, PrismRunner). off: nothing until the summary. Default: on",
        )
        group.add_argument(
            "--metrics_port",
            type=int,
            default=None,
            help="Serve the run's metrics (counters, and lag gauges labelled by shard, partition or "
            "subscription) in Prometheus text format on http://127.0.0.1:N/metrics while a local run "
            "(DirectRunner, PrismRunner) runs; a port in use is refused before the run. Default: off",
        )


def _seconds(ms: float) -> str:
    return f"{ms / 1000:,.1f} s"


def progress_line(live: LiveMetrics, events_per_s: float, elapsed_s: float, wall_ms: float) -> str:
    """The line's text: what LIVE says now; a watermark or lag no reader reported shows as '-'."""
    worst_watermark_lag = live.worst(WATERMARK_LAG_MS)
    if worst_watermark_lag is None:
        watermark = "-"
    else:
        # The lowest reader watermark is the one furthest behind the wall clock.
        at = time.strftime("%H:%M:%S", time.gmtime((wall_ms - worst_watermark_lag) / 1000))
        watermark = f"{at}Z ({_seconds(worst_watermark_lag)} behind)"
    source_lag = live.worst(SOURCE_LAG_MS)
    return (
        f"[{elapsed_s:,.0f} s] records {live.counter(RECORDS_READ):,} | {events_per_s:,.0f} events/s | "
        f"dead letters {live.counter(DEAD_LETTERS):,} | watermark {watermark} | "
        f"source lag {'-' if source_lag is None else _seconds(source_lag)} | "
        f"files {live.counter(FILES_WRITTEN):,}"
    )


class Progress:
    """Writes `progress_line` every `interval_s` from a daemon thread until `stop()`: records read,
    events decoded per second, dead letters, the lowest reader watermark, the worst source lag and
    aggregate files written.

    On a terminal the line is rewritten in place and cleared at the end, so the summary that
    follows keeps its form; elsewhere (a pipe, a file, CI) each update is its own log line."""

    def __init__(
        self,
        stream: TextIO,
        live: LiveMetrics = LIVE,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], float] = lambda: time.time() * 1000,
    ) -> None:
        self._stream = stream
        self._live = live
        self._interval_s = interval_s
        self._clock = clock
        self._wall_ms = wall_ms
        self._tty = _isatty(stream)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False

    def start(self) -> None:
        self._started = self._last_at = self._clock()
        self._last_events = self._live.counter(EVENTS_DECODED)
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the updates and clears the terminal line (idempotent)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._tty and self._shown:
            self._write(CLEAR_LINE)
            self._shown = False

    def tick(self) -> str:
        """Writes one update now and returns its text."""
        now = self._clock()
        events = self._live.counter(EVENTS_DECODED)
        rate = (events - self._last_events) / (now - self._last_at) if now > self._last_at else 0.0
        self._last_at, self._last_events = now, events
        text = progress_line(self._live, rate, now - self._started, self._wall_ms())
        if self._tty:
            # Cut to the terminal's width: a wrapped line could not be rewritten in place.
            width = _columns(self._stream) - 1
            self._write(CLEAR_LINE + text[:width])
            self._shown = True
        else:
            self._write(f"{time.strftime('%H:%M:%S')} progress: {text}\n")
        return text

    def _loop(self) -> None:
        while not self._done.wait(self._interval_s):
            self.tick()

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream must not end the run
            self._done.set()


def _columns(stream: TextIO) -> int:
    """The width of the terminal `stream` writes to (not stdout's: the summary goes there)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 120
    except (AttributeError, OSError, ValueError):
        return 120


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
