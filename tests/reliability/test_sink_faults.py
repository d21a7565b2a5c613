"""Sink faults: the object store refuses every write for several seconds (Azurite stopped);
the run retries and ends with every window's file present exactly once, with exact content."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest

from tests.reliability.helpers import (
    REPO,
    assert_same_aggregates,
    encode,
    expected_aggregates,
    good_events,
    write_lines,
)

pytestmark = pytest.mark.integration


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
    rows = {}
    for name in names:
        for line in client.download_blob(name).readall().decode().splitlines():
            record = json.loads(line)
            key = (record["window_start"], record["region"], record["key"])
            assert key not in rows, f"{key} written twice"
            rows[key] = record
    assert_same_aggregates(rows, expected_aggregates(events))
    assert set(per_window) and all(count <= 8 for count in per_window.values())  # 4 shards x 2 regions at most
