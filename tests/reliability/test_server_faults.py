"""Server faults during a read: the Kinesis server is stopped for several seconds and
restarted, and throttling errors are injected for a fraction of calls; both runs finish with
exact aggregates."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.reliability.helpers import (
    CLAIMED,
    REPO,
    assert_same_aggregates,
    claim_marking_cli,
    encode,
    expected_aggregates,
    final_aggregates,
    good_events,
    kinesis_stream,
    put_kinesis,
    read_panes,
    run_cli,
)
from tests.services.throttling import ThrottlingProxy

pytestmark = pytest.mark.integration
WRAPPER = claim_marking_cli()


def test_kinesis_outage_mid_read(durable_kinesis, tmp_path):
    """Half the events are read, kinesalite is down for 5 s, the other half is put after it
    is back: the run (bounded by --max_records) rides out the outage and every event counts once."""
    client = durable_kinesis.client()
    stream = kinesis_stream(client, 2, f"outage-{uuid.uuid4().hex[:8]}")
    events = good_events(2_000, seed=12)
    put_kinesis(client, stream, encode(events[:1_000]))
    out = tmp_path / "out"
    argv = ["--source", f"kinesis://{stream}?region=us-east-1", "--kinesis_start_position", "TRIM_HORIZON",
            "--kinesis_poll_interval", "0.2", "--max_records", str(len(events)), "--streaming", "--output", str(out)]
    env = {**os.environ, **durable_kinesis.env()}
    job = subprocess.Popen([sys.executable, "-c", WRAPPER, *argv], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    claimed = threading.Event()

    def follow() -> None:
        total = 0
        assert job.stderr is not None
        for line in job.stderr:
            stderr.append(line)
            match = CLAIMED.match(line.strip())
            total += int(match.group(1)) if match else 0
            if total >= 1_000:
                claimed.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        assert claimed.wait(120), "the first half was not read:\n" + "".join(stderr[-20:])
        with durable_kinesis.outage(5):
            time.sleep(0)  # down for 5 s while the reader polls
        put_kinesis(client, stream, encode(events[1_000:]))
        # wait(), not communicate(): communicate() would also read stderr, racing the follower for lines.
        job.wait(timeout=240)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(timeout=30)
    reader.join(timeout=10)
    assert job.returncode == 0, "".join(stderr[-40:])
    assert any("unavailable" in line for line in stderr), "the outage was never noticed"
    assert_same_aggregates(final_aggregates(read_panes(out)), expected_aggregates(events))


def test_kinesis_throttling_a_fraction_of_calls(kinesis_service, tmp_path):
    """A proxy answers ProvisionedThroughputExceeded to 30% of GetRecords calls (seeded): the
    reader backs off per shard and the aggregates are exact."""
    client = kinesis_service.client()
    stream = kinesis_stream(client, 2, f"throttle-{uuid.uuid4().hex[:8]}")
    events = good_events(3_000, seed=13)
    put_kinesis(client, stream, encode(events))
    proxy = ThrottlingProxy(kinesis_service.endpoint_url, limit=1_000, fraction=0.3, seed=13)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        env = {**kinesis_service.env(), "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_KINESIS": endpoint}
        done = run_cli(env, "--source", f"kinesis://{stream}?region=us-east-1", "--kinesis_start_position",
                       "TRIM_HORIZON", "--kinesis_poll_interval", "0.2", "--max_records", str(len(events)),
                       "--output", str(tmp_path / "out"))
    finally:
        proxy.shutdown()
    assert proxy.throttled >= 1, (proxy.throttled, proxy.get_records)
    assert done.stderr.count("throttled (ProvisionedThroughputExceededException") == proxy.throttled
    assert_same_aggregates(final_aggregates(read_panes(tmp_path / "out")), expected_aggregates(events))
