"""The CLI writes aggregates to S3 (moto), Azure Blob (Azurite) and GCS (gcp-storage-emulator)
over the wire, in jsonl, parquet and avro; the objects read back with each store's official
client equal aggregates computed here independently, and a second identical run leaves the
same keys and bytes. The jobs run under `--jurisdiction eu` with an eu bucket/container (the
allowed combination); the refusals are in test_sinks_sovereignty.py.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import subprocess
import sys
import urllib.request
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

import fastavro
import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FORMATS = ("jsonl", "parquet", "avro")
WINDOW_S = 600
REGIONS = ("eu-west-1", "eu-central-1", "eu-north-1")
KEYS = ("alpha", "beta", "gamma", "delta")
EVENTS = 3000
MALFORMED = 7
# 23:40 -> 00:20 UTC: windows on both sides of a day (and hour) boundary.
BASE_MS = int(datetime(2026, 3, 1, 23, 40, tzinfo=UTC).timestamp() * 1000)
SPAN_MS = 40 * 60 * 1000
# Bounded runs: part-<shard>; streaming rolls: part-<first window start>-<last window end>-<digest>-<shard>.
PART = re.compile(
    r"^dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/region=([a-z0-9-]+)/"
    r"part-(?:(\d{8}T\d{6}Z)-(\d{8}T\d{6}Z)-[0-9a-f]{32}-)?s\d{3}of\d{3}\.(jsonl|parquet|avro)$"
)
DEAD = "dead_letter/"  # where check_output expects the dead letters (the default puts them beside the output)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- input and the independent expectation --------------------------------------------------


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    rng = random.Random(20260301)
    events = []
    for i in range(EVENTS):
        events.append(
            {
                # Some ids repeat, so distinct_ids differs from count.
                "event_id": f"e{rng.randrange(EVENTS * 3 // 4)}",
                "event_time": BASE_MS + rng.randrange(SPAN_MS),
                "region": rng.choice(REGIONS),
                "key": rng.choice(KEYS),
                "value": round(rng.uniform(-50, 500), 3),
                "seq": i,
            }
        )
    lines = [orjson.dumps(e) for e in events]
    for i in range(MALFORMED):
        lines.insert(rng.randrange(len(lines)), b'{"event_id": "broken-%d", "value": ' % i)
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, events


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_aggregates(events: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Fixed 600 s windows x (region, key), computed without any project code."""
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        start = event["event_time"] - event["event_time"] % (WINDOW_S * 1000)
        groups[(start, event["region"], event["key"])].append(event)
    expected = {}
    for (start, region, key), members in groups.items():
        values = np.array([e["value"] for e in members])
        expected[(_iso(start), region, key)] = {
            "window_start": _iso(start),
            "window_end": _iso(start + WINDOW_S * 1000),
            "region": region,
            "key": key,
            "count": len(members),
            "sum": float(values.sum()),
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean()),
            # Nearest-rank quantiles (exact: every group here is small).
            "p50": float(np.quantile(values, 0.50, method="inverted_cdf")),
            "p95": float(np.quantile(values, 0.95, method="inverted_cdf")),
            "p99": float(np.quantile(values, 0.99, method="inverted_cdf")),
            "distinct_ids": len({e["event_id"] for e in members}),
            "pane": "ON_TIME",
            "pane_index": 0,
        }
    return expected


# --- reading objects back -------------------------------------------------------------------

PUBLISHED_AVSC = json.loads((REPO / "transforms" / "schemas" / "aggregate.avsc").read_text())
PARQUET_TYPES = {
    "window_start": "string",
    "window_end": "string",
    "region": "string",
    "key": "string",
    "count": "int64",
    "sum": "double",
    "min": "double",
    "max": "double",
    "mean": "double",
    "p50": "double",
    "p95": "double",
    "p99": "double",
    "distinct_ids": "int64",
    "pane": "string",
    "pane_index": "int64",
}


def _avro_shape(schema: dict[str, Any]) -> list[tuple[str, Any]]:
    def kind(t: Any) -> Any:
        return tuple(t["symbols"]) if isinstance(t, dict) and t.get("type") == "enum" else t

    return [(f["name"], kind(f["type"])) for f in schema["fields"]]


def decode(name: str, data: bytes) -> list[dict[str, Any]]:
    if name.endswith(".jsonl"):
        return [orjson.loads(line) for line in data.splitlines() if line]
    if name.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(data))
        assert {f.name: str(f.type) for f in table.schema} == PARQUET_TYPES
        assert list(table.schema.names) == list(PARQUET_TYPES)
        return table.to_pylist()
    if name.endswith(".avro"):
        reader = fastavro.reader(io.BytesIO(data))
        # Written with the schema published in the repo (fastavro qualifies the names).
        assert _avro_shape(json.loads(reader.metadata["avro.schema"])) == _avro_shape(PUBLISHED_AVSC)
        return list(reader)
    raise AssertionError(f"unexpected object {name}")


def check_output(objects: dict[str, bytes], output_format: str, expected: dict) -> None:
    aggregates = {k: v for k, v in objects.items() if not k.startswith(DEAD)}
    dead = {k: v for k, v in objects.items() if k.startswith(DEAD)}
    assert not [k for k in objects if ".tmp" in k], "temporary objects left behind"
    got: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key, data in aggregates.items():
        match = PART.match(key)
        assert match, f"object {key!r} is not in the dt=/hour=/region=/part-... layout"
        dt, hour, region, first, last, ext = match.groups()
        assert ext == output_format
        for record in decode(key, data):
            assert record["window_start"][:10] == dt and record["window_start"][11:13] == hour
            assert record["region"] == region
            if first:
                compact = {k: record[k].replace("-", "").replace(":", "") for k in ("window_start", "window_end")}
                assert first <= compact["window_start"] and compact["window_end"] <= last
            ident = (record["window_start"], record["region"], record["key"])
            assert ident not in got, f"aggregate {ident} written twice"
            got[ident] = record
    assert set(got) == set(expected)
    for ident, want in expected.items():
        have = got[ident]
        for field, value in want.items():
            if isinstance(value, float):
                assert math.isclose(have[field], value, rel_tol=1e-9, abs_tol=1e-9), (ident, field)
            else:
                assert have[field] == value, (ident, field)
    lines = [orjson.loads(line) for data in dead.values() for line in data.splitlines() if line]
    assert len(lines) == MALFORMED
    assert all(line["payload"].startswith('{"event_id": "broken-') for line in lines)


# --- running the CLI ------------------------------------------------------------------------


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(REPO),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "pipelines.run", *args],
        env=full_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_formats(env: dict[str, str], source: Path, base: str, *extra: str) -> None:
    """One CLI run per format, the three at once (each its own subprocess)."""

    def one(fmt: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            env,
            "--source", f"file://{source}",
            "--output", f"{base}/{fmt}",
            "--output_format", fmt,
            "--window", f"fixed:{WINDOW_S}",
            "--jurisdiction", "eu",
            *extra,
        )  # fmt: skip

    with ThreadPoolExecutor(len(FORMATS)) as pool:
        results = list(pool.map(one, FORMATS))
    for fmt, result in zip(FORMATS, results, strict=True):
        assert result.returncode == 0, f"{fmt}: {result.stderr[-3000:]}"


def with_dead_letters(listing: Callable[[str], dict[str, bytes]], output: str) -> dict[str, bytes]:
    """The objects under the output prefix, and under DEAD those of its default dead-letter prefix."""
    dead = {DEAD + name: data for name, data in listing(f"{output}_dead_letter/").items()}
    return {**listing(f"{output}/"), **dead}


def round_trip(
    env: dict[str, str],
    events_file: tuple[Path, list[dict[str, Any]]],
    base: str,
    list_objects: Callable[[str], dict[str, bytes]],
    *extra: str,
) -> None:
    source, events = events_file
    expected = expected_aggregates(events)
    run_formats(env, source, base, *extra)
    first = {fmt: list_objects(fmt) for fmt in FORMATS}
    for fmt in FORMATS:
        check_output(first[fmt], fmt, expected)
    run_formats(env, source, base, *extra)
    for fmt in FORMATS:
        assert list_objects(fmt) == first[fmt], f"{fmt}: a second run changed the objects"


# --- one test per store ---------------------------------------------------------------------


def test_s3_formats_round_trip_and_rerun(moto_service, events_file) -> None:
    s3 = moto_service.client("s3")
    bucket = _name("analytics-eu")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})

    def listing(prefix: str) -> dict[str, bytes]:
        objects = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                objects[item["Key"][len(prefix) :]] = body
        return objects

    def list_objects(fmt: str) -> dict[str, bytes]:
        return with_dead_letters(listing, f"agg/{fmt}")

    # The endpoint reaches Beam's S3 filesystem and the guard through AWS_ENDPOINT_URL alone.
    round_trip(moto_service.env(), events_file, f"s3://{bucket}/agg", list_objects)


def test_azure_blob_formats_round_trip_and_rerun(azurite_service, events_file) -> None:
    container = _name("analytics-eu")
    client = azurite_service.client().create_container(container)

    def listing(prefix: str) -> dict[str, bytes]:
        return {
            blob.name[len(prefix) :]: client.download_blob(blob.name).readall()
            for blob in client.list_blobs(name_starts_with=prefix)
        }

    def list_objects(fmt: str) -> dict[str, bytes]:
        return with_dead_letters(listing, f"agg/{fmt}")

    # Only AZURE_STORAGE_CONNECTION_STRING (never on the command line); the account's region
    # is not visible from the blob endpoint, so the eu job states it with --sink_region.
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite_service.connection_string}
    base = f"azfs://{azurite_service.account_name}/{container}/agg"
    round_trip(env, events_file, base, list_objects, "--sink_region", "westeurope")


def set_gcs_location(gcs_service, bucket: str, location: str) -> None:
    """gcp-storage-emulator creates every bucket in US and ignores a location on insert, but
    accepts one by PATCH (real GCS fixes it at creation): how a regional bucket is made here."""
    request = urllib.request.Request(
        f"{gcs_service.endpoint_url}/storage/v1/b/{bucket}",
        data=json.dumps({"location": location}).encode(),
        headers={"Content-Type": "application/json"},
        method="PATCH",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.load(answer)["location"] == location


def test_gcs_formats_round_trip_and_rerun(gcs_service, events_file) -> None:
    client = gcs_service.client()
    bucket = client.create_bucket(_name("analytics-eu"))
    set_gcs_location(gcs_service, bucket.name, "EUROPE-WEST1")

    def listing(prefix: str) -> dict[str, bytes]:
        return {
            blob.name[len(prefix) :]: blob.download_as_bytes() for blob in client.list_blobs(bucket.name, prefix=prefix)
        }

    def list_objects(fmt: str) -> dict[str, bytes]:
        return with_dead_letters(listing, f"agg/{fmt}")

    round_trip(gcs_service.env(), events_file, f"gs://{bucket.name}/agg", list_objects)


def test_s3_streaming_writes_one_set_of_files_per_window_and_pane(moto_service, events_file) -> None:
    # Streaming DirectRunner over the bounded file source: Beam windows and triggers, files
    # rolled per partition and shard (one roll: the local runner gives all output at the end);
    # the aggregates are the same as in batch.
    s3 = moto_service.client("s3")
    bucket = _name("analytics-eu")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    source, events = events_file
    result = run_cli(
        moto_service.env(),
        "--source", f"file://{source}",
        "--output", f"s3://{bucket}/stream",
        "--output_format", "parquet",
        "--window", f"fixed:{WINDOW_S}",
        "--streaming",
        "--jurisdiction", "eu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    def listing(prefix: str) -> dict[str, bytes]:
        items = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        read = lambda key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # noqa: E731
        return {item["Key"][len(prefix) :]: read(item["Key"]) for item in items}

    check_output(with_dead_letters(listing, "stream"), "parquet", expected_aggregates(events))
