"""The project's metrics: one Beam namespace, one vocabulary, and a live view for local runs.

Every counter and gauge a run reports (readers, decoder, writers) is a Beam metric under
`NAMESPACE`, which the runners export (Flink's reporters, Dataflow's Cloud Monitoring). Beam's
local runners hand metrics back only when the run ends, so the same values are also kept in
`LIVE`, a process-local view that the live progress line and the local Prometheus endpoint read
while the job runs. `LIVE` sees what runs in the launching process: the in-memory DirectRunner
and LOOPBACK workers of Prism and portable runners.
"""

from __future__ import annotations

import threading

from apache_beam.metrics import Metrics

NAMESPACE = "analytics"

# The vocabulary (docs/operations.md has the table): the same names on every source.
RECORDS_READ = "records_read"
SOURCE_RECORDS_READ = "source_records_read"  # records the stream readers claimed (records_read is the decoder's)
BYTES_READ = "bytes_read"
DEAD_LETTERS = "dead_letters"
FILES_WRITTEN = "files_written"
SOURCE_LAG_MS = "source_lag_ms"  # how far the reader is behind the head of the stream, in time
SOURCE_BACKLOG_RECORDS = "source_backlog_records"  # records not yet read, where the service tells
WATERMARK_LAG_MS = "watermark_lag_ms"  # wall clock minus the reader's watermark


class LiveMetrics:
    """Counters and labelled gauges of this process, readable while the job runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._gauges: dict[str, dict[str, float]] = {}

    def inc(self, name: str, value: int = 1) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + value

    def set(self, name: str, label: str, value: float) -> None:
        """Gauge `name` for one shard, partition or subscription (`label`)."""
        with self._lock:
            self._gauges.setdefault(name, {})[label] = value

    def counter(self, name: str) -> int:
        with self._lock:
            return self._counters.get(name, 0)

    def gauge(self, name: str) -> dict[str, float]:
        with self._lock:
            return dict(self._gauges.get(name, {}))

    def worst(self, name: str) -> float | None:
        """The largest value of gauge `name` over its labels (None when nothing reported it)."""
        values = self.gauge(name).values()
        return max(values) if values else None

    def snapshot(self) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
        with self._lock:
            return dict(self._counters), {name: dict(by) for name, by in self._gauges.items()}

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()
            self._gauges.clear()


LIVE = LiveMetrics()


class Counter:
    """A Beam counter under NAMESPACE that also counts into LIVE."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._beam = Metrics.counter(NAMESPACE, name)

    def inc(self, value: int = 1) -> None:
        self._beam.inc(value)
        LIVE.inc(self.name, value)


class Gauge:
    """A Beam gauge under NAMESPACE, one per label (`name[label]`), also kept in LIVE by label."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._beam: dict[str, object] = {}

    def set(self, label: str, value: float) -> None:
        gauge = self._beam.get(label)
        if gauge is None:
            gauge = self._beam[label] = Metrics.gauge(NAMESPACE, name_of(self.name, label))
        gauge.set(int(value))  # type: ignore[attr-defined]
        LIVE.set(self.name, label, value)


def name_of(name: str, label: str) -> str:
    """The Beam metric name of gauge `name` for one label: runners keep no labels on Python gauges."""
    return f"{name}[{label}]"
