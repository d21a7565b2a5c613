"""File rolling: few aggregate files, every aggregate read back and checked against an independent
computation, and dead letters that stay out of the aggregates' table."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue

from benchmarks.workloads import Workload
from benchmarks.workloads import events as workload_events
from io_connectors.synthetic import SyntheticConfig, generate
from io_connectors.uri import SinkSpec, parse_sink
from pipelines.analytics import add_analytics
from pipelines.config import build_config, default_dead_letter
from tests.e2e.helpers import MALFORMED, default_dead_letters, make_events, read_aggregates, run_cli
from tests.reliability.helpers import REPO, assert_same_aggregates, expected_aggregates
from tests.unit.helpers import batch, event

SHARDS = 4  # --window_shards' default
BOUNDED_NAME = re.compile(r"part-s\d{3}of004\.(jsonl|parquet)")
STREAMING_NAME = re.compile(r"part-\d{8}T\d{6}Z-\d{8}T\d{6}Z-[0-9a-f]{32}-s\d{3}of\d{3}\.jsonl")


def aggregate_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("part-*") if p.is_file()]


def by_group(records: list[dict]) -> dict[tuple, dict]:
    """(window_start, region, key) -> record; each group must be written exactly once."""
    got = {(r["window_start"], r["region"], r["key"]): r for r in records}
    assert len(got) == len(records), "an aggregate was written twice"
    return got


def test_default_job_writes_at_most_64_files_each_aggregate_exact(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pipelines.run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "output"
    files = aggregate_files(out)
    assert 0 < len(files) <= 64, len(files)
    assert all(BOUNDED_NAME.fullmatch(p.name) for p in files)
    per_partition = defaultdict(int)
    for path in files:
        per_partition[path.parent] += 1
    assert max(per_partition.values()) <= SHARDS
    # The oracle decodes the same seeded lines with the standard library alone.
    valid, rejected = [], 0
    for line in generate(SyntheticConfig(), 0, SyntheticConfig().events):
        try:
            record = json.loads(line)
        except ValueError:
            rejected += 1
            continue
        ok = isinstance(record.get("event_time"), int) and type(record.get("value")) in (int, float)
        valid += [record] if ok else []
        rejected += not ok
    records = read_aggregates(out, "jsonl")
    assert sum(r["count"] for r in records) == len(valid) and f"dead letters      {rejected:>12,}" in done.stdout
    assert_same_aggregates(by_group(records), expected_aggregates(valid))
    # Dead letters beside the output, not in it: nothing but partitions under the table's root.
    assert sorted({p.name.split("=")[0] for p in out.iterdir()}) == ["dt"]
    dead_files = default_dead_letters(out).glob("part-*.jsonl")
    assert sum(len([line for line in p.read_bytes().split(b"\n") if line]) for p in dead_files) == rejected


def sessions(events: list[dict], gap_ms: int) -> dict[tuple, dict]:
    """(window_start, region, key) -> exact metrics of each session: a group's events split
    wherever the next event comes a gap or more after the last, ending a gap after its last."""
    by_dims: dict[tuple, list[dict]] = defaultdict(list)
    for e in events:
        by_dims[(e["region"], e["key"])].append(e)
    out = {}
    for (region, key), members in by_dims.items():
        members.sort(key=lambda e: e["event_time"])
        runs: list[list[dict]] = []
        for e in members:
            if runs and e["event_time"] < runs[-1][-1]["event_time"] + gap_ms:
                runs[-1].append(e)
            else:
                runs.append([e])
        for run in runs:
            # Keyed by the start: the oracle for fixed windows gives the metrics when the window is huge.
            metrics = next(iter(expected_aggregates(run, window_s=10**9).values()))
            out[(iso_ms(run[0]["event_time"]), region, key)] = {
                **metrics, "window_end": iso_ms(run[-1]["event_time"] + gap_ms)
            }
    return out


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC, with milliseconds only when there are any (as the output contract has it)."""
    text = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


def test_w2_shaped_sessions_write_at_most_400_files_with_row_group_statistics(tmp_path: Path) -> None:
    """W2's shape (an hour of events, 3 regions, events per key and minute as in W2) at a tenth of
    its 1M events and keys: ~6,400 sessions, which were one file each before rolling."""
    shaped = Workload("W2-tenth", 100_000, 60, "json", keys=100)
    events = workload_events(shaped)
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    out = tmp_path / "out"
    done = run_cli("--source", f"file://{source}", "--window", "session:30", "--output_format", "parquet",
                   "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    files = aggregate_files(out)
    assert 0 < len(files) <= 400, len(files)
    assert all(BOUNDED_NAME.fullmatch(p.name) for p in files)
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        for group in range(metadata.num_row_groups):
            for column in range(metadata.num_columns):
                stats = metadata.row_group(group).column(column).statistics
                assert stats is not None and stats.has_min_max, (path, column)
    got = by_group(read_aggregates(out, "parquet"))
    expected = sessions(events, 30_000)
    assert len(expected) > 5_000 and len(files) * 100 < len(expected)
    assert_same_aggregates(got, expected)
    assert all(got[group]["window_end"] == want["window_end"] for group, want in expected.items())


def test_streaming_panes_that_fire_within_a_roll_share_files(tmp_path: Path) -> None:
    """TestStream drives processing time: EARLY and ON_TIME panes fired within --file_roll seconds
    share a file; a LATE pane fired a roll later gets a file of its own."""
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([TimestampedValue(batch(event(1_000, 1), event(2_000, 2, key="k2")), 1)])
        .advance_processing_time(11)  # EARLY pane (every 10 s); its roll ends 30 s later
        .add_elements([TimestampedValue(batch(event(3_000, 4)), 3)])
        .advance_processing_time(11)  # a second EARLY pane, same roll
        .advance_watermark_to(61)  # ON_TIME pane, same roll
        .advance_processing_time(31)  # the roll fires
        .add_elements([TimestampedValue(batch(event(4_000, 8)), 62)])  # LATE pane, a new roll
        .advance_watermark_to_infinity()  # the input ends: the last roll fires
    )
    out = tmp_path / "out"
    flags = ["--output", str(out), "--streaming", "--window", "fixed:60", "--early_firing", "10",
             "--allowed_lateness", "120", "--file_roll", "30", "--window_shards", "1"]  # fmt: skip
    options = PipelineOptions(flags)
    options.view_as(StandardOptions).streaming = True
    config = build_config(options)
    with TestPipeline(options=options) as p:
        add_analytics(p | stream, config)
    files = sorted(aggregate_files(out), key=lambda p: p.name)
    assert all(STREAMING_NAME.fullmatch(p.name) for p in files), files
    rolls = sorted(
        sorted((r["pane"], r["pane_index"], r["key"], r["count"]) for r in map(orjson.loads, lines.splitlines()))
        for lines in (f.read_bytes() for f in files)
    )
    assert rolls == [
        [("EARLY", 0, "k1", 1), ("EARLY", 0, "k2", 1), ("EARLY", 1, "k1", 2), ("EARLY", 1, "k2", 1),
         ("ON_TIME", 2, "k1", 2), ("ON_TIME", 2, "k2", 1)],
        [("LATE", 3, "k1", 3), ("LATE", 3, "k2", 1)],
    ]  # fmt: skip


def test_cli_streaming_run_rolls_its_files(tmp_path: Path) -> None:
    """A paced synthetic stream with EARLY panes every second and a 2-second roll: each partition
    gets at most --window_shards files per roll, and the last panes hold every decoded event."""
    out = tmp_path / "out"
    started = time.monotonic()
    done = run_cli("--source", "synthetic://?events=3000&rate=750&late=0", "--early_firing", "1", "--file_roll", "2",
                   "--output", str(out))  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    files = aggregate_files(out)
    assert files and all(STREAMING_NAME.fullmatch(p.name) for p in files), files[:3]
    per_key: dict[tuple, int] = defaultdict(int)
    for path in files:
        per_key[(path.parent, path.name.rsplit("-", 1)[1])] += 1
    assert max(per_key.values()) <= math.ceil(elapsed / 2) + 1, (max(per_key.values()), elapsed)
    records = read_aggregates(out, "jsonl")
    assert len({(r["window_start"], r["region"], r["key"], r["pane_index"]) for r in records}) == len(records)
    last: dict[tuple, dict] = {}
    for r in records:
        group = (r["window_start"], r["region"], r["key"])
        if group not in last or r["pane_index"] > last[group]["pane_index"]:
            last[group] = r
    dead = sum(len(p.read_bytes().splitlines()) for p in default_dead_letters(out).glob("*.jsonl"))
    assert sum(r["count"] for r in last.values()) == 3000 - dead


@pytest.mark.parametrize(
    ("output", "dead_letter"),
    [
        ("./output", "{cwd}/output_dead_letter"),
        ("/data/agg/", "/data/agg_dead_letter"),
        ("s3://b/p/agg", "s3://b/p/agg_dead_letter"),
        ("gs://b/agg/", "gs://b/agg_dead_letter"),
        ("azfs://acct/container/agg", "azfs://acct/container/agg_dead_letter"),
        ("s3://b", "s3://b/_dead_letter"),
        ("gs://b/", "gs://b/_dead_letter"),
        ("azfs://acct/container", "azfs://acct/container/_dead_letter"),
    ],
)
def test_default_dead_letter_is_beside_the_output_or_hidden_at_a_bucket_root(output: str, dead_letter: str) -> None:
    assert default_dead_letter(parse_sink(output)) == SinkSpec(
        output.split("://")[0] if "://" in output else "file", dead_letter.format(cwd=os.getcwd())
    )


@pytest.mark.parametrize("inside", ["dead_letter", "_dead_letter", ""])
def test_dead_letters_inside_the_output_leave_a_table_duckdb_reads(tmp_path: Path, inside: str) -> None:
    """Dead letters pointed into the output (a plain or `_` directory, or the root itself) are named
    `_part-<digest>.ndjson`: Hive, Athena and Spark skip the leading `_`, and DuckDB's read of
    `<output>/**/*.jsonl` with hive_partitioning does not meet them."""
    events = make_events(2_000, seed=5)
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join([*(orjson.dumps(e) for e in events), *MALFORMED]) + b"\n")
    out = tmp_path / "out"
    dead_dir = out / inside if inside else out
    done = run_cli("--source", f"file://{source}", "--output", str(out), "--dead_letter", str(dead_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    dead = list(dead_dir.glob("*"))
    assert dead and all(re.fullmatch(r"_part-[0-9a-f]{32}\.ndjson", p.name) for p in dead if p.is_file())
    assert sum(len(p.read_bytes().splitlines()) for p in dead if p.is_file()) == len(MALFORMED)
    rows = duckdb.sql(
        f"select dt, hour, region, sum(count) as events, count(*) as aggregates "
        f"from read_json_auto('{out}/**/*.jsonl', hive_partitioning = true) group by all"
    ).fetchall()
    assert sum(r[3] for r in rows) == len(events)
    assert sum(r[4] for r in rows) == len(read_aggregates(out, "jsonl"))
