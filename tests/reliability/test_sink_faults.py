"""Sink faults: the object store refuses every write for a while (Azurite stopped; S3 answering
503 through a proxy in front of moto, which keeps its data only in memory and so cannot be
restarted); the run retries and ends with every window's file present exactly once, with exact
content. Past the retry budget the run fails with an error saying what to do, and no object is
left under a final name."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.helpers import (
    REPO,
    assert_same_aggregates,
    encode,
    expected_aggregates,
    good_events,
    run_cli,
    write_lines,
)
from tests.services._aws import aws_env
from tests.services.s3_outage import S3WriteOutage

pytestmark = pytest.mark.integration

# Longer than boto3's legacy retries can wait (at most 15 s), well within the sink's (~2 min).
S3_OUTAGE_S = 20.0


def _rows(bodies: Iterable[bytes]) -> dict[tuple, dict]:
    """(window_start, region, key) -> record of jsonl aggregate files; a key seen twice fails."""
    rows: dict[tuple, dict] = {}
    for body in bodies:
        for line in body.decode().splitlines():
            record = json.loads(line)
            key = (record["window_start"], record["region"], record["key"])
            assert key not in rows, f"{key} written twice"
            rows[key] = record
    return rows


def test_azure_blob_down_while_writing(durable_azurite, tmp_path):
    """Azurite is stopped before the run and restarted 8 s into it, while the run is blocked on
    its first writes: the store client's retries carry it through, each (window, pane, shard)
    file is written once, and the aggregates are exact."""
    events = good_events(3_000, seed=21)
    write_lines(tmp_path / "events.jsonl", encode(events))
    container = f"agg-{uuid.uuid4().hex[:8]}"
    client = durable_azurite.client().create_container(container)
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": durable_azurite.connection_string}
    argv = [sys.executable, "-m", "pipelines.run", "--source", f"file://{tmp_path}/events.jsonl",
            "--output", f"azfs://{durable_azurite.account_name}/{container}/agg",
            "--dead_letter", str(tmp_path / "dead"), "--sink_region", "westeurope"]
    durable_azurite.stop()
    try:
        job = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(8)  # the read and the aggregation take ~3 s: the writes meet a dead store
        assert job.poll() is None, job.communicate()[1][-3000:]  # still running: blocked on the store
    finally:
        durable_azurite.start()
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 0, stderr[-4000:]
    names = [b.name for b in client.list_blobs(name_starts_with="agg/") if b.name.endswith(".jsonl")]
    assert not [n for n in names if "/.tmp-" in n]  # no temporary objects left behind
    per_window = Counter(n.rsplit("/", 1)[1].rsplit("-", 1)[0] for n in names)  # part-<window>-<pane>
    rows = _rows(client.download_blob(name).readall() for name in names)
    assert_same_aggregates(rows, expected_aggregates(events))
    assert set(per_window) and all(count <= 8 for count in per_window.values())  # 4 shards x 2 regions at most


def _s3_objects(client, bucket: str, prefix: str) -> dict[str, bytes]:
    """Name below `prefix` -> bytes of every object there, read straight from moto."""
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            objects[item["Key"][len(prefix) :]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return objects


def _s3_job(moto_service, tmp_path, events: list[dict]) -> tuple[object, str, list[str]]:
    """A bucket in eu-west-1 and the CLI arguments reading `events` (the run adds its output)."""
    client = moto_service.client("s3")
    bucket = f"agg-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    write_lines(tmp_path / "events.jsonl", encode(events))
    return client, bucket, ["--source", f"file://{tmp_path}/events.jsonl", "--sink_region", "eu-west-1"]


def _outputs(bucket: str, tmp_path, name: str) -> list[str]:
    return ["--output", f"s3://{bucket}/{name}", "--dead_letter", str(tmp_path / f"dead-{name}")]


def test_s3_down_while_writing(moto_service, tmp_path):
    """A proxy in front of moto answers 503 ServiceUnavailable to every S3 write for 20 s from the
    run's first write, longer than boto3's legacy retries can wait: the sink's retries carry the
    run through, every refused object is committed afterwards, the objects (names and bytes) are
    exactly those of a run without the outage, none is temporary, and the aggregates are exact."""
    events = good_events(3_000, seed=22)
    client, bucket, argv = _s3_job(moto_service, tmp_path, events)
    with ThreadPoolExecutor(1) as pool, S3WriteOutage(moto_service.endpoint_url, S3_OUTAGE_S).serving() as proxy:
        # The reference: the same job straight to moto, run meanwhile to keep the test short.
        clean_run = pool.submit(run_cli, moto_service.env(), *argv, *_outputs(bucket, tmp_path, "clean"))
        through_proxy = aws_env(proxy.endpoint_url, moto_service.region, ("s3",))
        run_cli(through_proxy, *argv, *_outputs(bucket, tmp_path, "agg"), timeout=300)
        clean_run.result()
    assert proxy.refused > 0, "the run wrote nothing during the outage"
    assert proxy.refused_keys <= proxy.committed_keys, sorted(proxy.refused_keys - proxy.committed_keys)[:5]
    written, clean = _s3_objects(client, bucket, "agg/"), _s3_objects(client, bucket, "clean/")
    assert not [name for name in written if "/.tmp-" in name]  # no temporary objects left behind
    assert written == clean  # each (window, pane, shard) object once, same bytes as without the outage
    assert_same_aggregates(_rows(written.values()), expected_aggregates(events))


def test_s3_down_past_the_retry_budget_fails_clearly(moto_service, tmp_path):
    """With every S3 write refused for good and AWS_MAX_ATTEMPTS=2 (a budget of about a second),
    the run exits non-zero with an error naming the object and saying what to do, and leaves no
    object under the output prefix: a refused upload is never visible, not even in part."""
    client, bucket, argv = _s3_job(moto_service, tmp_path, good_events(300, seed=23))
    with S3WriteOutage(moto_service.endpoint_url, seconds=math.inf).serving() as proxy:
        env = {**aws_env(proxy.endpoint_url, moto_service.region, ("s3",)), "AWS_MAX_ATTEMPTS": "2"}
        done = run_cli(env, *argv, *_outputs(bucket, tmp_path, "agg"), check=False)
    assert done.returncode != 0
    assert proxy.refused > 0
    assert f"writing s3://{bucket}/agg/" in done.stderr, done.stderr[-3000:]
    assert "rerun the job" in done.stderr and "AWS_MAX_ATTEMPTS" in done.stderr, done.stderr[-3000:]
    assert _s3_objects(client, bucket, "agg/") == {}
