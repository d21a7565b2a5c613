"""Windows and panes through the real graph (add_analytics) on the DirectRunner.

Bounded input takes the fast path (window id in the key); TestStream drives the streaming
path with watermarks and processing time, which is where early, on-time and late panes and
the allowed lateness matter.
"""

from __future__ import annotations

import apache_beam as beam
import orjson
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue

from pipelines.analytics import add_analytics
from pipelines.config import build_config
from tests.unit.helpers import batch, event


def config_for(tmp_path, *flags: str):
    options = PipelineOptions(["--output", str(tmp_path / "out"), *flags])
    return build_config(options)


def summary(records):
    """(window_start, window_end, key, count, sum, pane, pane_index), sorted, for compact asserts."""
    return sorted(
        (r["window_start"][11:19], r["window_end"][11:19], r["key"], r["count"], r["sum"], r["pane"], r["pane_index"])
        for r in records
    )


def written(out_dir):
    """Every aggregate record the sink wrote under out_dir (dead letters excluded)."""
    return [
        orjson.loads(line)
        for path in sorted(out_dir.rglob("part-*.jsonl"))
        if "dead_letter" not in path.parts
        for line in path.read_bytes().splitlines()
    ]


def run_bounded(tmp_path, batches, *flags):
    out = tmp_path / f"bounded-{len(list(tmp_path.iterdir()))}"
    config = config_for(out, *flags)
    with TestPipeline() as p:
        add_analytics(p | beam.Create(batches), config)
    return written(out / "out")


def test_fixed_windows_bounded(tmp_path):
    batches = [
        batch(event(1_000, 1), event(59_999, 2), event(60_000, 4)),
        batch(event(30_000, 8, key="k2"), event(61_000, 16)),
    ]
    got = summary(run_bounded(tmp_path, batches, "--window", "fixed:60"))
    assert got == [
        ("00:00:00", "00:01:00", "k1", 2, 3.0, "ON_TIME", 0),
        ("00:00:00", "00:01:00", "k2", 1, 8.0, "ON_TIME", 0),
        ("00:01:00", "00:02:00", "k1", 2, 20.0, "ON_TIME", 0),
    ]


def test_sliding_windows_bounded(tmp_path):
    # size 120 s every 60 s: an event at 90 s is in [0,120) and [60,180).
    got = summary(run_bounded(tmp_path, [batch(event(30_000, 1), event(90_000, 2))], "--window", "sliding:120,60"))
    assert got == [
        ("00:00:00", "00:02:00", "k1", 2, 3.0, "ON_TIME", 0),
        ("00:01:00", "00:03:00", "k1", 1, 2.0, "ON_TIME", 0),
        ("23:59:00", "00:01:00", "k1", 1, 1.0, "ON_TIME", 0),
    ]


def test_session_windows_merge_across_batches(tmp_path):
    # gap 10 s: 0 s and 8 s (batch 1) join 15 s (batch 2) into one session; 40 s is a new one.
    batches = [batch(event(0, 1), event(8_000, 2)), batch(event(15_000, 4), event(40_000, 8))]
    got = summary(run_bounded(tmp_path, batches, "--window", "session:10"))
    assert got == [
        ("00:00:00", "00:00:25", "k1", 3, 7.0, "ON_TIME", 0),
        ("00:00:40", "00:00:50", "k1", 1, 8.0, "ON_TIME", 0),
    ]


def streaming_run(tmp_path, stream, *flags):
    tmp_path = tmp_path / "streaming"
    options = PipelineOptions(["--output", str(tmp_path / "out"), "--streaming", *flags])
    options.view_as(StandardOptions).streaming = True
    config = build_config(options)
    with TestPipeline(options=options) as p:
        add_analytics(p | stream, config)
    return written(tmp_path / "out")


def at(t_ms, *events):
    return TimestampedValue(batch(*events), t_ms / 1000)


def test_early_on_time_late_panes_and_lateness_cutoff(tmp_path):
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([at(1_000, event(1_000, 1))])
        .advance_processing_time(11)  # early firing after 10 s of processing time
        .add_elements([at(2_000, event(2_000, 2))])
        .advance_watermark_to(61)  # window [0,60) closes: ON_TIME pane
        .add_elements([at(61_000, event(3_000, 4))])  # late but within 120 s lateness: LATE pane
        .advance_watermark_to(200)  # past end + allowed lateness: window expired
        .add_elements([at(200_000, event(4_000, 100))])  # too late: must not change the result
        .advance_watermark_to_infinity()
    )
    records = streaming_run(tmp_path, stream, "--window", "fixed:60", "--early_firing", "10",
                            "--allowed_lateness", "120")
    panes = [(r["pane"], r["count"], r["sum"]) for r in sorted(records, key=lambda r: r["pane_index"])]
    assert panes[0] == ("EARLY", 1, 1.0)
    assert ("ON_TIME", 2, 3.0) in panes
    assert panes[-1] == ("LATE", 3, 7.0)
    assert all(count <= 3 for _, count, _ in panes), "data beyond the allowed lateness changed a result"
    assert [r["pane_index"] for r in sorted(records, key=lambda r: r["pane_index"])] == list(range(len(records)))


def test_late_data_is_dropped_without_allowed_lateness(tmp_path):
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([at(1_000, event(1_000, 1)), at(2_000, event(2_000, 2))])
        .advance_watermark_to(61)
        .add_elements([at(61_000, event(3_000, 4))])
        .advance_watermark_to_infinity()
    )
    records = streaming_run(tmp_path, stream, "--window", "fixed:60")
    assert [(r["pane"], r["count"], r["sum"]) for r in records] == [("ON_TIME", 2, 3.0)]


@pytest.mark.parametrize("window", ["sliding:120,60", "session:10"])
def test_streaming_path_matches_bounded_path(tmp_path, window):
    events = [event(t * 1_000, float(t), key=f"k{t % 3}") for t in range(0, 200, 7)]
    bounded = run_bounded(tmp_path, [batch(*events[:10]), batch(*events[10:])], "--window", window)
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([at(0, *events[:10])])
        .add_elements([at(0, *events[10:])])
        .advance_watermark_to_infinity()
    )
    streamed = streaming_run(tmp_path, stream, "--window", window)
    assert summary(streamed) == summary(bounded)
