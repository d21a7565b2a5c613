"""The CLI on dimension values built to escape or collide in output paths: a traversal, a value
that differs from another only by a trailing `/`, a 300-byte value, a NUL byte, reserved
spellings. Nothing lands outside the output and dead-letter roots, the run succeeds, and every
aggregate reads back with its exact values and counts, on a local directory and on S3 (moto).
Runs both below and above 512 lines, so the row decoder and the Arrow fast path both serve."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable

import orjson
import pyarrow.parquet as pq
import pytest

from transforms.partition_paths import decode, encode, is_cut

REPO = Path(__file__).resolve().parents[2]
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z; every event falls in its first minute
WINDOW_START = "2026-01-01T00:00:00Z"


def hostile_events(pair_count: int, filler: int) -> tuple[list[dict], str]:
    """Events in one window; returns them and the absolute path the traversal value aims at."""
    target = f"tmp/pwned-{uuid.uuid4().hex}"
    traversal = "../" * 10 + target
    regions = [
        traversal, "r" * 300, "é" * 150, "a\x00b", "", ".", "..", "__HIVE_DEFAULT_PARTITION__", "%2F", "eu/../..",
        "x._COPYING_", "a.", "\\..\\..\\x", "dt=2026-01-01", "😀\u0085\ufffe",
    ]  # fmt: skip
    events = [{"region": "eu-west-1", "key": "k"} for _ in range(pair_count)]
    events.append({"region": "eu-west-1/", "key": "k"})  # same window and key as the pair above
    events += [{"region": region, "key": "k"} for region in regions]
    events += [{"region": "eu-west-1", "key": key} for key in ("../x", "\x00", "", "k" * 300)]
    events += [{"region": f"filler-{i % 7}", "key": f"f{i % 3}"} for i in range(filler)]
    for i, event in enumerate(events):
        event.update(event_id=f"e{i}", event_time=BASE_MS + i % 59_000, value=i % 10)
    return events, "/" + target


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.run", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), **env})  # fmt: skip


def expected_counts(events: list[dict]) -> Counter:
    return Counter((e["region"], e["key"]) for e in events)


def check_aggregates(records: list[tuple[str, dict]], events: list[dict]) -> None:
    """`records` are (partition path of the file, record); each matches its path and the input."""
    got: Counter = Counter()
    for partition, record in records:
        assert record["window_start"] == WINDOW_START and record["pane"] == "ON_TIME"
        segment = partition.split("/")[-1]
        assert segment == "region=" + encode(record["region"])
        value = segment.removeprefix("region=")
        if not is_cut(value):
            assert decode(value) == record["region"]
        assert (record["region"], record["key"]) not in got, "an aggregate was written twice"
        got[(record["region"], record["key"])] = record["count"]
        want = [e["value"] for e in events if (e["region"], e["key"]) == (record["region"], record["key"])]
        assert record["sum"] == sum(want)
    assert got == expected_counts(events)


SIZES = pytest.mark.parametrize(("pair_count", "filler"), [(400, 0), (599, 1500)], ids=["row-path", "arrow-path"])


@SIZES
def test_hostile_values_stay_under_the_output_and_read_back(tmp_path: Path, pair_count: int, filler: int) -> None:
    events, target = hostile_events(pair_count, filler)
    lines = [orjson.dumps(e) for e in events]
    assert (len(lines) < 512) == (filler == 0)  # the Arrow fast path engages at 512 lines a batch
    source = tmp_path / "e.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = run_cli({}, "--source", f"file://{source}", "--output", f"file://{tmp_path}/out",
                     "--dead_letter", f"file://{tmp_path}/dlq")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert not os.path.lexists(target)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != source]
    outside = [p for p in written if p.relative_to(tmp_path).parts[0] not in ("out", "dlq")]
    assert outside == [], outside
    assert not [p for p in written if p.name.startswith(".tmp-")]
    dead = [line for p in (tmp_path / "dlq").rglob("*.jsonl") for line in p.read_bytes().splitlines()]
    assert dead == []
    records = [
        (str(path.parent.relative_to(tmp_path / "out")), orjson.loads(line))
        for path in (tmp_path / "out").rglob("part-*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    check_aggregates(records, events)
    counts = {(r["region"], r["key"]): r["count"] for _, r in records}
    assert counts[("eu-west-1", "k")] == pair_count and counts[("eu-west-1/", "k")] == 1


Store = tuple[dict[str, str], str, Callable[[], dict[str, bytes]]]


def s3_store(request: pytest.FixtureRequest) -> Store:
    service = request.getfixturevalue("moto_service")
    s3, bucket = service.client("s3"), f"hostile-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)

    def objects() -> dict[str, bytes]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}

    return service.env(), f"s3://{bucket}", objects


def azure_store(request: pytest.FixtureRequest) -> Store:
    service = request.getfixturevalue("azurite_service")
    container = service.client().create_container(f"hostile-{uuid.uuid4().hex[:8]}")

    def objects() -> dict[str, bytes]:
        return {blob.name: container.download_blob(blob.name).readall() for blob in container.list_blobs()}

    env = {"AZURE_STORAGE_CONNECTION_STRING": service.connection_string}
    return env, f"azfs://{service.account_name}/{container.container_name}", objects


def gcs_store(request: pytest.FixtureRequest) -> Store:
    service = request.getfixturevalue("gcs_service")
    client = service.client()
    bucket = client.create_bucket(f"hostile-{uuid.uuid4().hex[:8]}")

    def objects() -> dict[str, bytes]:
        # By name, without the listed generation: gcp-storage-emulator answers 404 to a download
        # with ?generation= when the name holds a %-escape (real GCS does not).
        names = [blob.name for blob in client.list_blobs(bucket.name)]
        return {name: bucket.blob(name).download_as_bytes() for name in names}

    return service.env(), f"gs://{bucket.name}", objects


STORES = {"s3": s3_store, "azfs": azure_store, "gs": gcs_store}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("store", "pair_count", "filler"),
    [("s3", 400, 0), ("s3", 599, 1500), ("azfs", 599, 1500), ("gs", 599, 1500)],
    ids=["s3-row-path", "s3-arrow-path", "azfs", "gs"],
)
def test_hostile_values_stay_under_the_store_prefix_and_read_back(
    request: pytest.FixtureRequest, tmp_path: Path, store: str, pair_count: int, filler: int
) -> None:
    env, base, objects = STORES[store](request)
    events, _ = hostile_events(pair_count, filler)
    source = tmp_path / "e.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    result = run_cli(env, "--source", f"file://{source}", "--output", f"{base}/agg/out",
                     "--dead_letter", f"{base}/agg/dlq", "--output_format", "parquet")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    written = objects()
    assert written and all(key.startswith("agg/out/dt=") for key in written), list(written)  # no dead letters
    assert all(segment not in ("", ".", "..") for key in written for segment in key.split("/"))
    records = []
    for key, body in written.items():
        partition = key.removeprefix("agg/out/").rsplit("/", 1)[0]
        records += [(partition, row) for row in pq.read_table(io.BytesIO(body)).to_pylist()]
    check_aggregates(records, events)
