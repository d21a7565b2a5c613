"""--metrics_port: the run's metrics in Prometheus text format while a local run runs.

A prometheus-client Collector reads `io_connectors.metrics.LIVE` on every scrape, so the
endpoint shows exactly what the progress line shows: counters as `analytics_<name>_total`, gauges
as `analytics_<name>{split="<shard, partition or subscription>"}` (docs/operations.md).
"""

from __future__ import annotations

import re
from typing import Iterator

from io_connectors.metrics import (
    BYTES_READ,
    DEAD_LETTERS,
    FILES_WRITTEN,
    LIVE,
    NAMESPACE,
    RECORDS_READ,
    SOURCE_BACKLOG_RECORDS,
    SOURCE_LAG_MS,
    SOURCE_RECORDS_READ,
    WATERMARK_LAG_MS,
    LiveMetrics,
)

SPLIT_LABEL = "split"  # the shard, partition or subscription a gauge is about
HOST = "127.0.0.1"  # a local run's numbers are for this machine; put a proxy in front to share them

HELP = {
    RECORDS_READ: "Records read from the source (an unreadable part of a file is not a record).",
    SOURCE_RECORDS_READ: "Records the stream reader claimed, before decoding.",
    BYTES_READ: "Payload bytes the stream reader claimed.",
    DEAD_LETTERS: "Records that could not be decoded, sent to the dead letters.",
    FILES_WRITTEN: "Aggregate files written.",
    "events_decoded": "Records decoded into events.",
    "aggregates_written": "Aggregate records written.",
    SOURCE_LAG_MS: "How far the reader is behind the head of the stream, in milliseconds.",
    SOURCE_BACKLOG_RECORDS: "Records not yet read, where the service tells.",
    WATERMARK_LAG_MS: "Wall clock minus the reader's watermark, in milliseconds.",
}


class MetricsServerError(RuntimeError):
    """The endpoint cannot start; the message names the option and the fix."""


def metric_name(name: str) -> str:
    """`analytics_<name>` with any character Prometheus refuses in a name replaced by `_`."""
    return re.sub(r"[^a-zA-Z0-9_:]", "_", f"{NAMESPACE}_{name}")


class LiveCollector:
    """A prometheus-client collector over a LiveMetrics view."""

    def __init__(self, live: LiveMetrics = LIVE) -> None:
        self._live = live

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counters, gauges = self._live.snapshot()
        for name, value in sorted(counters.items()):
            yield CounterMetricFamily(metric_name(name), HELP.get(name, f"The {name} counter."), value=value)
        for name, by_split in sorted(gauges.items()):
            family = GaugeMetricFamily(metric_name(name), HELP.get(name, f"The {name} gauge."), labels=[SPLIT_LABEL])
            for split, value in sorted(by_split.items()):
                family.add_metric([split], value)
            yield family


class MetricsServer:
    """Serves LIVE at http://127.0.0.1:<port>/metrics from a daemon thread; `stop()` closes it."""

    def __init__(self, port: int, live: LiveMetrics = LIVE) -> None:
        if not 1 <= port <= 65535:
            raise MetricsServerError(f"--metrics_port {port} is not a TCP port: give one from 1 to 65535.")
        self.port = port
        self._live = live
        self._server = None

    def start(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ModuleNotFoundError as err:
            raise MetricsServerError(
                "--metrics_port needs prometheus-client: pip install prometheus-client (or reinstall this package)."
            ) from err
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LiveCollector(self._live))
        try:
            self._server, _thread = start_http_server(self.port, addr=HOST, registry=registry)
        except OSError as err:
            raise MetricsServerError(
                f"--metrics_port {self.port}: cannot listen on {HOST}:{self.port} ({err.strerror or err}); "
                "the port is probably in use: pick another port, or stop what holds it."
            ) from err

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/metrics"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
