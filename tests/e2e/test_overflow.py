"""A sum beyond a double's range never stops the run and never hides: the aggregate is written
with sum and mean Infinity (readable as a double by Athena, BigQuery, Spark and pyarrow), and a
dead letter names the group. On both decode paths (below and above the 512-record threshold of
the columnar path), for fixed and session windows, on a local and an S3 (moto) sink."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from tests.reliability.helpers import BASE_MS, run_cli

OVERFLOWING = ("eu-west-1", "hot")


def _events_file(path: Path, lines: int) -> Path:
    """`lines` events in one minute; two of them 1e308 in the group OVERFLOWING, the rest value 1."""
    events = []
    for i in range(lines):
        region, key = OVERFLOWING if i < 10 else ("us-east-1", f"k{i % 5}")
        events.append(
            {"event_id": f"e{i}", "event_time": BASE_MS + (i * 50) % 20_000, "region": region, "key": key,
             "value": 1e308 if i in (3, 7) else 1.0}
        )
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def _rows(out: Path, suffix: str) -> list[dict]:
    rows: list[dict] = []
    for path in sorted(out.rglob(f"*.{suffix}")):
        if suffix == "jsonl":
            rows += [json.loads(line) for line in path.read_text().splitlines()]
        else:
            rows += pq.read_table(path).to_pylist()
    return rows


def _check(rows: list[dict], dead: list[dict], lines: int) -> None:
    hot = [r for r in rows if (r["region"], r["key"]) == OVERFLOWING]
    assert len(hot) == 1, hot
    assert hot[0]["count"] == 10 and hot[0]["max"] == 1e308 and hot[0]["min"] == 1.0
    # JSON lines carry the string "Infinity" (orjson alone would write null); Parquet a double.
    assert float(hot[0]["sum"]) == math.inf and float(hot[0]["mean"]) == math.inf
    assert sum(r["count"] for r in rows) == lines
    others = [r for r in rows if (r["region"], r["key"]) != OVERFLOWING]
    assert all(r["sum"] == r["count"] for r in others)
    assert len(dead) == 1, dead
    assert "beyond a double's range" in dead[0]["error"] and "'hot'" in dead[0]["error"]
    assert json.loads(dead[0]["payload"])["key"] == "hot"


@pytest.mark.parametrize("window", ["fixed:60", "session:30"])
@pytest.mark.parametrize("lines", [100, 1500])
def test_overflowing_sum_is_written_and_dead_lettered(tmp_path: Path, window: str, lines: int) -> None:
    source = _events_file(tmp_path / "e.jsonl", lines)
    out, dlq = tmp_path / "out", tmp_path / "dlq"
    done = run_cli({}, "--source", f"file://{source}", "--output", f"file://{out}",
                   "--dead_letter", f"file://{dlq}", "--window", window)
    assert "dead letters                 1" in done.stdout, done.stdout
    dead = [json.loads(line) for p in dlq.rglob("*.jsonl") for line in p.read_text().splitlines()]
    _check(_rows(out, "jsonl"), dead, lines)


def test_overflowing_sum_in_parquet_is_infinity(tmp_path: Path) -> None:
    source = _events_file(tmp_path / "e.jsonl", 600)
    out, dlq = tmp_path / "out", tmp_path / "dlq"
    run_cli({}, "--source", f"file://{source}", "--output", str(out), "--dead_letter", str(dlq),
            "--output_format", "parquet")
    dead = [json.loads(line) for p in dlq.rglob("*.jsonl") for line in p.read_text().splitlines()]
    _check(_rows(out, "parquet"), dead, 600)


@pytest.mark.integration
def test_overflowing_sum_on_s3(moto_service, tmp_path: Path) -> None:
    s3 = moto_service.client("s3")
    bucket = f"overflow-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    source = _events_file(tmp_path / "e.jsonl", 600)
    run_cli(moto_service.env(), "--source", f"file://{source}", "--output", f"s3://{bucket}/agg",
            "--dead_letter", f"s3://{bucket}/dlq", "--window", "session:30")

    def lines_under(prefix: str) -> list[dict]:
        found = []
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found += [json.loads(line) for line in body.splitlines()]
        return found

    _check(lines_under("agg/"), lines_under("dlq/"), 600)
