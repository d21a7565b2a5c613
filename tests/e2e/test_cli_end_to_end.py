"""The CLI end to end on generated files, checked against an independent computation."""

from __future__ import annotations

import os
import subprocess
import sys

import fastavro
import orjson
import pytest

from tests.e2e.helpers import (
    AVRO_EVENT,
    MALFORMED,
    REPO,
    check_against_expected,
    default_dead_letters,
    expected_aggregates,
    make_events,
    read_aggregates,
    run_cli,
    to_ms,
)


@pytest.fixture(scope="module")
def ndjson_input(tmp_path_factory):
    events = make_events(20_000)
    lines = [orjson.dumps(e) for e in events]
    # Malformed lines spread through the file; remember their 1-based line numbers.
    positions = {}
    for i, bad in enumerate(MALFORMED):
        at = 1000 * (i + 1) + i
        lines.insert(at, bad)
    for number, line in enumerate(lines, start=1):
        if line in MALFORMED:
            positions[number] = line
    path = tmp_path_factory.mktemp("input") / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, events, positions


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "avro"])
def test_cli_aggregates_equal_independent_computation(ndjson_input, tmp_path, fmt):
    path, events, bad_lines = ndjson_input
    out = tmp_path / "out"
    result = run_cli("--source", f"file://{path}", "--output", str(out), "--output_format", fmt)
    assert result.returncode == 0, result.stderr
    assert "records read" in result.stdout and "20,006" in result.stdout
    check_against_expected(read_aggregates(out, fmt), expected_aggregates(events))
    dead_files = default_dead_letters(out).glob("*.jsonl")
    dead = [orjson.loads(line) for p in dead_files for line in p.read_bytes().splitlines()]
    assert sorted(int(d["source"].rsplit(":", 1)[1]) for d in dead) == sorted(bad_lines)
    assert all(d["error"] for d in dead)


def test_avro_and_json_inputs_give_identical_aggregates(ndjson_input, tmp_path):
    _, events, _ = ndjson_input
    clean = [{**{k: v for k, v in e.items() if k != "ignored"}, "event_time": to_ms(e["event_time"]),
              "value": float(e["value"])} for e in events]
    json_path = tmp_path / "events.jsonl"
    json_path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in clean))
    avro_path = tmp_path / "events.avro"
    with avro_path.open("wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(AVRO_EVENT), clean)
    assert run_cli("--source", f"file://{json_path}", "--output", str(tmp_path / "j")).returncode == 0
    result = run_cli("--source", f"file://{avro_path}", "--input_format", "avro", "--output", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    from_json = sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in read_aggregates(tmp_path / "j", "jsonl"))
    from_avro = sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in read_aggregates(tmp_path / "a", "jsonl"))
    assert from_json == from_avro and len(from_json) > 0


def test_rerun_writes_identical_files(ndjson_input, tmp_path):
    path, _, _ = ndjson_input
    out = tmp_path / "out"
    snapshots = []
    for _ in range(2):
        assert run_cli("--source", f"file://{path}", "--output", str(out)).returncode == 0
        snapshots.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert snapshots[0] == snapshots[1], "a re-run changed or added files"
    assert not [p for p in snapshots[1] if p.name.startswith(".tmp-")]
    assert any(p.parts[0].startswith("dt=") for p in snapshots[1])


def test_default_run_uses_synthetic_source_and_prints_summary(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipelines.run"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "records read" in result.stdout and "100,000" in result.stdout
    assert "dead letters" in result.stdout
    assert list((tmp_path / "output").rglob("part-*.jsonl"))


def test_early_firing_runs_locally_and_final_panes_are_complete(tmp_path):
    """--early_firing runs on the local streaming runner (the default local runner has no
    processing-time clock) and each group's last pane accounts for every decoded event. Which
    EARLY panes appear depends on how the source's bundles fall in time; the pane logic itself
    is proven with TestStream in tests/unit/test_windows_and_panes.py."""
    out = tmp_path / "out"
    result = run_cli("--source", "synthetic://?events=3000&rate=1000&late=0", "--early_firing", "1",
                     "--output", str(out))
    assert result.returncode == 0, result.stderr
    records = read_aggregates(out, "jsonl")
    assert records and all(r["pane"] in ("EARLY", "ON_TIME", "LATE") for r in records)
    last: dict[tuple, dict] = {}
    for r in records:
        key = (r["window_start"], r["region"], r["key"])
        if key not in last or r["pane_index"] > last[key]["pane_index"]:
            last[key] = r
    dead = [line for p in default_dead_letters(out).glob("*.jsonl") for line in p.read_bytes().splitlines()]
    assert sum(r["count"] for r in last.values()) == 3000 - len(dead)
