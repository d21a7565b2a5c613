"""The progress line, the Prometheus collector and the CLI's checks of --progress and --metrics_port."""

from __future__ import annotations

import io
import re
import socket

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from prometheus_client import CollectorRegistry, generate_latest

from io_connectors.metrics import (
    DEAD_LETTERS,
    FILES_WRITTEN,
    RECORDS_READ,
    SOURCE_LAG_MS,
    WATERMARK_LAG_MS,
    LiveMetrics,
)
from pipelines.metrics_server import LiveCollector, MetricsServer, MetricsServerError, metric_name
from pipelines.progress import CLEAR_LINE, EVENTS_DECODED, Progress, progress_line
from pipelines.run import live_views, main

WALL_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _live() -> LiveMetrics:
    live = LiveMetrics()
    live.inc(RECORDS_READ, 1_234)
    live.inc(DEAD_LETTERS, 5)
    live.inc(FILES_WRITTEN, 2)
    return live


def test_line_without_stream_readers_shows_no_watermark_or_lag():
    line = progress_line(_live(), 1_000.4, 3.0, WALL_MS)
    assert line == (
        "[3 s] records 1,234 | 1,000 events/s | dead letters 5 | watermark - | source lag - | files 2"
    )


def test_line_shows_the_lowest_watermark_and_the_worst_lag():
    live = _live()
    live.set(WATERMARK_LAG_MS, "s/0", 2_000)
    live.set(WATERMARK_LAG_MS, "s/1", 65_000)  # the lowest watermark: a minute and 5 s behind
    live.set(SOURCE_LAG_MS, "s/0", 1_500)
    live.set(SOURCE_LAG_MS, "s/1", 300)
    line = progress_line(live, 0, 1, WALL_MS)
    assert "watermark 23:58:55Z (65.0 s behind)" in line
    assert "source lag 1.5 s" in line


def test_events_per_second_is_the_rate_since_the_last_update():
    live, now = LiveMetrics(), [100.0]
    progress = Progress(io.StringIO(), live, clock=lambda: now[0], wall_ms=lambda: WALL_MS)
    progress.start()
    progress.stop()  # no thread: ticks are driven by hand below
    live.inc(EVENTS_DECODED, 3_000)
    now[0] = 102.0
    assert "| 1,500 events/s |" in progress.tick()
    live.inc(EVENTS_DECODED, 500)
    now[0] = 103.0
    assert "| 500 events/s |" in progress.tick()


def test_a_terminal_gets_one_line_rewritten_in_place_and_cleared():
    stream, live = Tty(), _live()
    progress = Progress(stream, live, interval_s=0.01)
    progress.start()
    progress.tick()
    progress.tick()
    progress.stop()
    text = stream.getvalue()
    assert "\n" not in text
    assert text.startswith(CLEAR_LINE + "[") and text.endswith(CLEAR_LINE)
    assert text.count("records 1,234") >= 2


def test_elsewhere_each_update_is_a_log_line_and_nothing_is_cleared():
    stream = io.StringIO()
    progress = Progress(stream, _live(), interval_s=0.01)
    progress.start()
    progress.tick()
    progress.stop()
    lines = stream.getvalue().splitlines()
    assert lines and all(re.fullmatch(r"\d\d:\d\d:\d\d progress: \[\d+ s\] records 1,234 .*", x) for x in lines)
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_collector_exposes_counters_and_gauges_with_their_split():
    live = _live()
    live.set(SOURCE_LAG_MS, "events/0", 1_400)
    live.set(SOURCE_LAG_MS, 'odd"split', 7)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveCollector(live))
    text = generate_latest(registry).decode()
    assert "# TYPE analytics_records_read_total counter" in text
    assert "analytics_records_read_total 1234.0" in text
    assert "# TYPE analytics_source_lag_ms gauge" in text
    assert 'analytics_source_lag_ms{split="events/0"} 1400.0' in text
    assert 'analytics_source_lag_ms{split="odd\\"split"} 7.0' in text  # escaped by prometheus-client
    assert metric_name("odd-name.x") == "analytics_odd_name_x"


def test_a_port_in_use_and_a_port_out_of_range_are_refused():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(MetricsServerError, match=rf"--metrics_port {port}: cannot listen .* in use"):
            MetricsServer(port).start()
    with pytest.raises(MetricsServerError, match="not a TCP port"):
        MetricsServer(70_000)


@pytest.mark.parametrize("argv", [
    ["--runner", "FlinkRunner"],
    ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"],
])
def test_metrics_port_is_refused_where_this_process_cannot_see_the_metrics(argv):
    with pytest.raises(MetricsServerError, match="docs/operations.md"):
        live_views(PipelineOptions([*argv, "--metrics_port", "9108"]))


def test_progress_is_shown_only_where_the_workers_count_in_this_process():
    assert live_views(PipelineOptions([]))[1] is not None
    assert live_views(PipelineOptions(["--runner", "PrismRunner"]))[1] is not None
    assert live_views(PipelineOptions(["--progress", "off"]))[1] is None
    assert live_views(PipelineOptions(["--runner", "DataflowRunner"]))[1] is None
    assert live_views(PipelineOptions(["--direct_running_mode", "multi_processing"]))[1] is None


def test_cli_refuses_a_bad_progress_value(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--progress", "maybe"])
    assert exited.value.code == 2
    assert "--progress: invalid choice: 'maybe'" in capsys.readouterr().err
