"""A seeded generator of realistic events: several regions and keys, out-of-order and late
arrivals, and a share of malformed records, so every path of the pipeline is exercised.

`synthetic://?events=N&keys=K&seed=S` is bounded and reproducible (fixed base time);
`rate=R` paces about R events/s and stamps events with the wall clock, for freshness runs.
On a runner that resumes deferred work (Prism, Flink, Dataflow) a paced read checkpoints
between its batches (`resumable`), so each batch reaches the windows while the read goes on and
early panes fire during the run; in one DoFn call, the runner would see every batch at its end.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Iterator

import apache_beam as beam
import orjson
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.core import RestrictionProvider

from io_connectors.records import RawBatch
from io_connectors.uri import SourceSpec, UriError

BASE_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed so seeded runs agree byte for byte
DEFAULT_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1")
MALFORMED_KINDS = ("invalid_json", "missing_time", "non_numeric_value", "empty", "bad_time")


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape of the generated stream; fractions are of all records."""

    events: int = 100_000
    keys: int = 50
    seed: int = 42
    rate: float | None = None
    span_s: float = 600.0
    regions: tuple[str, ...] = DEFAULT_REGIONS
    malformed: float = 0.01
    late: float = 0.02
    out_of_order_s: float = 5.0
    batch_size: int = 20_000

    @classmethod
    def from_spec(cls, spec: SourceSpec) -> SyntheticConfig:
        regions = tuple(r for r in (spec.param("regions") or ",".join(DEFAULT_REGIONS)).split(",") if r)
        rate = spec.float_param("rate", 0.0) or None
        config = cls(
            events=spec.int_param("events", cls.events),
            keys=spec.int_param("keys", cls.keys),
            seed=spec.int_param("seed", cls.seed),
            rate=rate,
            span_s=spec.float_param("span", cls.span_s),
            regions=regions,
            malformed=spec.float_param("malformed", cls.malformed),
            late=spec.float_param("late", cls.late),
            batch_size=spec.int_param("batch", cls.batch_size),
        )
        problems = []
        if config.events < 0:
            problems.append("events must be >= 0")
        if config.keys < 1:
            problems.append("keys must be >= 1")
        if not config.regions:
            problems.append("regions must name at least one region")
        if config.span_s <= 0:
            problems.append("span must be > 0 seconds")
        if config.batch_size < 1:
            problems.append("batch must be >= 1")
        for name in ("malformed", "late"):
            if not 0 <= getattr(config, name) <= 1:
                problems.append(f"{name} must be a fraction between 0 and 1")
        if problems:
            raise UriError(f"{spec.shown!r}: " + "; ".join(problems) + ".")
        return config


def _malformed(rng: random.Random, index: int, event: dict) -> bytes:
    kind = MALFORMED_KINDS[index % len(MALFORMED_KINDS)]
    if kind == "invalid_json":
        return orjson.dumps(event)[:-3] + b"oops"
    if kind == "missing_time":
        event.pop("event_time")
    elif kind == "non_numeric_value":
        event["value"] = "n/a"
    elif kind == "empty":
        return b""
    else:
        event["event_time"] = "yesterday at noon"
    return orjson.dumps(event)


def generate(config: SyntheticConfig, first: int, count: int) -> Iterator[bytes]:
    """JSON lines for events first..first+count-1; the same indices always give the same bytes
    (except with `rate`, where event times follow the wall clock)."""
    step_ms = config.span_s * 1000 / max(config.events, 1)
    for index in range(first, first + count):
        rng = random.Random(config.seed * 1_000_003 + index)
        if config.rate:
            time_ms = int(time.time() * 1000)
        else:
            time_ms = BASE_TIME_MS + int(index * step_ms)
        time_ms += int(rng.uniform(-config.out_of_order_s, config.out_of_order_s) * 1000)
        if rng.random() < config.late:
            time_ms -= rng.randint(60_000, 300_000)  # minutes behind: late for streaming windows
        event = {
            "event_id": f"e-{config.seed}-{index}",
            "event_time": max(time_ms, 0),
            "region": config.regions[rng.randrange(len(config.regions))],
            "key": f"k{rng.randrange(config.keys):04d}",
            "value": round(rng.lognormvariate(3.0, 1.0), 3),
        }
        if config.rate:
            event["sent_ms"] = int(time.time() * 1000)
        if rng.random() < config.malformed:
            yield _malformed(rng, index, event)
        else:
            yield orjson.dumps(event)


class _GenerateBatch(beam.DoFn):
    def __init__(self, config: SyntheticConfig) -> None:
        self._config = config

    def process(self, span: tuple[int, int]) -> Iterator[RawBatch]:
        config = self._config
        first, count = span
        if not config.rate:
            yield RawBatch("synthetic", list(generate(config, first, count)), first_offset=first)
            return
        # Paced: emit small batches on schedule so that freshness reflects the pipeline, not the generator.
        chunk = max(1, int(config.rate / 20))
        started = time.monotonic()
        for offset in range(0, count, chunk):
            due = started + offset / config.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            n = min(chunk, count - offset)
            yield RawBatch("synthetic", list(generate(config, first + offset, n)), first_offset=first + offset)


# How long one call of a resumable paced read emits batches before it hands the rest back.
PACED_CALL_S = 0.25


class _PacedRead(beam.DoFn, RestrictionProvider):
    """Paced batches of one span as a splittable read: each call emits the batches due within
    PACED_CALL_S, then defers the rest of the span, which the runner resumes at once."""

    def __init__(self, config: SyntheticConfig) -> None:
        self._config = config

    def initial_restriction(self, span: tuple[int, int]) -> OffsetRange:
        first, count = span
        return OffsetRange(first, first + count)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, span: tuple[int, int], restriction: OffsetRange) -> int:
        return restriction.size()

    def process(
        self, span: tuple[int, int], tracker: OffsetRestrictionTracker = beam.DoFn.RestrictionParam()
    ) -> Iterator[RawBatch]:
        config = self._config
        chunk = max(1, int(config.rate / 20))
        restriction = tracker.current_restriction()
        started = time.monotonic()
        for first in range(restriction.start, restriction.stop, chunk):
            after_s = (first - restriction.start) / config.rate  # when this batch is due in this call
            if after_s > PACED_CALL_S:
                tracker.defer_remainder()
                return
            time.sleep(max(0.0, started + after_s - time.monotonic()))
            n = min(chunk, restriction.stop - first)
            # The batch's last position: the tracker counts every position up to it as claimed.
            if not tracker.try_claim(first + n - 1):
                return
            yield RawBatch("synthetic", list(generate(config, first, n)), first_offset=first)


class ReadSynthetic(beam.PTransform):
    """Bounded seeded events as RawBatches of JSON lines; `resumable` (for a paced read on a runner
    that resumes deferred restrictions, see the module) checkpoints between batches."""

    def __init__(self, config: SyntheticConfig, resumable: bool = False) -> None:
        super().__init__()
        self._config = config
        self._resumable = resumable and bool(config.rate)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        config = self._config
        # Paced runs generate in one sequence so the rate holds end to end.
        step = max(config.events if config.rate else config.batch_size, 1)
        spans = [(first, min(step, config.events - first)) for first in range(0, config.events, step)]
        generate_fn = _PacedRead(config) if self._resumable else _GenerateBatch(config)
        return pbegin | "Batches" >> beam.Create(spans) | "Generate" >> beam.ParDo(generate_fn)
