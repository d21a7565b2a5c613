"""Crash and resume: a streaming Kinesis or Event Hubs run is SIGKILLed mid-stream and
restarted with --resume; the union of the outputs holds every event exactly once, and the
position store never runs ahead of what was written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from io_connectors.positions import store_path
from tests.reliability.helpers import (
    BASE_MS,
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
from tests.services.kafka import create_hub, produce

pytestmark = pytest.mark.integration


def _source_args(stream: str, out: Path) -> list[str]:
    return ["--source", f"kinesis://{stream}?region=us-east-1", "--kinesis_start_position", "TRIM_HORIZON",
            "--kinesis_poll_interval", "0.2", "--streaming", "--resume", "--output", str(out)]


# The Event Hubs reader's INFO lines say which offsets are held until the run ends.
WRAPPER = claim_marking_cli(**{"io_connectors.eventhubs": "INFO"})


def _kill_when(env: dict, argv: list[str], done: Callable[[str], bool]) -> None:
    """Starts the run in its own process group and SIGKILLs it at the first stderr line for which
    `done` is true (or after 120 s, so a run that never logs it fails the caller's checks)."""
    job = subprocess.Popen([sys.executable, "-c", WRAPPER, *argv], cwd=REPO, env={**os.environ, **env},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    watchdog = threading.Timer(120, os.killpg, (job.pid, signal.SIGKILL))
    watchdog.start()
    try:
        assert job.stderr is not None
        for line in job.stderr:
            if done(line):
                break
    finally:
        watchdog.cancel()
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)  # the whole pipeline process: no cleanup, no exit hooks
        job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL


def _kill_after_reading(env: dict, argv: list[str], records: int) -> None:
    """SIGKILLs the run once its reader has claimed `records` records: mid-stream, since the read
    goes on for --max_read_time."""
    claimed = [0]

    def all_claimed(line: str) -> bool:
        match = CLAIMED.search(line)
        claimed[0] += int(match.group(1)) if match else 0
        return claimed[0] >= records

    _kill_when(env, argv, all_claimed)
    assert claimed[0] == records


def test_killed_kinesis_run_resumes_with_every_event_once(kinesis_service, tmp_path):
    """Run 1 reads part A and commits; run 2 reads all of part B and is killed while its read
    goes on; run 3 resumes from run 1's positions. Union of the outputs: exactly A + B, one
    ON_TIME pane each. Run 2 committed nothing; run 3 re-read nothing of A (A's files untouched)."""
    client = kinesis_service.client()
    stream = kinesis_stream(client, 2, f"resume-{uuid.uuid4().hex[:8]}")
    out = tmp_path / "out"
    part_a = good_events(1_500, seed=1, start_ms=BASE_MS, prefix="a")
    # Part B's windows start 10 minutes later: each window is written by one run only.
    part_b = good_events(1_500, seed=2, start_ms=BASE_MS + 600_000, prefix="b")
    env = kinesis_service.env()

    put_kinesis(client, stream, encode(part_a))
    run_cli(env, *_source_args(stream, out), "--kinesis_read_to_latest")
    store = Path(store_path(str(out), f"kinesis://{stream}?region=us-east-1"))
    committed_a = json.loads(store.read_text())["positions"]
    assert len(committed_a) == 2  # one position per shard
    files_a = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}
    assert_same_aggregates(final_aggregates(read_panes(out)), expected_aggregates(part_a))

    put_kinesis(client, stream, encode(part_b))
    _kill_after_reading(env, [*_source_args(stream, out), "--max_read_time", "600"], len(part_b))
    assert json.loads(store.read_text())["positions"] == committed_a  # the killed run committed nothing

    run_cli(env, *_source_args(stream, out), "--kinesis_read_to_latest")
    panes = read_panes(out)  # also checks that no pane was written twice with different data
    on_time = {k[:3]: v for k, v in panes.items() if k[3] == "ON_TIME"}
    assert_same_aggregates(on_time, expected_aggregates(part_a + part_b))
    assert set(panes) == {(*k, "ON_TIME", 0) for k in on_time}
    assert {p: p.stat().st_mtime_ns for p in files_a} == files_a  # part A was not read again
    committed = json.loads(store.read_text())["positions"]
    assert all(int(committed[s]) > int(committed_a[s]) for s in committed_a)


EVENTHUBS_PARTITIONS = 3


def _eventhubs_args(bootstrap: str, hub: str, out: Path) -> list[str]:
    return ["--source", f"eventhubs://local/{hub}?consumer_group=analytics", "--kafka_bootstrap", bootstrap,
            "--eventhubs_security_protocol", "plaintext", "--eventhubs_max_partitions", str(EVENTHUBS_PARTITIONS),
            "--streaming", "--resume", "--output", str(out)]


def _produce_events(bootstrap: str, hub: str, events: list[dict], ends: dict[str, str]) -> None:
    """Round-robin over the partitions; `ends` tracks each partition's next offset as the store
    writes it (partition id -> offset, both strings)."""
    produce(bootstrap, hub, encode(events), partition_of=lambda i: i % EVENTHUBS_PARTITIONS)
    for i in range(len(events)):
        key = str(i % EVENTHUBS_PARTITIONS)
        ends[key] = str(int(ends.get(key, "0")) + 1)


def test_killed_eventhubs_run_resumes_with_every_event_once(kafka_service, tmp_path):
    """Run 1 reads part A and commits each partition's next offset; run 2 reads all of part B
    and is killed while its read goes on, committing nothing; run 3 resumes from run 1's
    offsets and reads B alone; run 4, after part C arrives, reads C alone. Union of the
    outputs: exactly A + B + C, one ON_TIME pane each, and earlier parts' files untouched."""
    bootstrap = kafka_service.bootstrap
    hub = f"resume-{uuid.uuid4().hex[:8]}"
    create_hub(bootstrap, hub, EVENTHUBS_PARTITIONS)
    out = tmp_path / "out"
    args = _eventhubs_args(bootstrap, hub, out)
    # Each part's windows start 10 minutes after the last one's: each window is written by one run only.
    part_a = good_events(1_200, seed=1, start_ms=BASE_MS, prefix="a")
    part_b = good_events(1_200, seed=2, start_ms=BASE_MS + 600_000, prefix="b")
    part_c = good_events(600, seed=3, start_ms=BASE_MS + 1_200_000, prefix="c")
    ends: dict[str, str] = {}
    store = Path(store_path(str(out), f"eventhubs://local/{hub}?consumer_group=analytics"))

    _produce_events(bootstrap, hub, part_a, ends)
    run_cli({}, *args, "--eventhubs_read_to_latest")
    assert json.loads(store.read_text())["positions"] == ends  # the next offset of every partition
    committed_a = dict(ends)
    files_a = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}
    assert_same_aggregates(final_aggregates(read_panes(out)), expected_aggregates(part_a))

    _produce_events(bootstrap, hub, part_b, ends)
    _kill_after_reading({}, [*args, "--max_read_time", "600"], len(part_b))
    assert json.loads(store.read_text())["positions"] == committed_a  # the killed run committed nothing

    run_cli({}, *args, "--eventhubs_read_to_latest")
    assert json.loads(store.read_text())["positions"] == ends
    assert {p: p.stat().st_mtime_ns for p in files_a} == files_a  # part A was not read again
    files_ab = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}

    _produce_events(bootstrap, hub, part_c, ends)
    run_cli({}, *args, "--eventhubs_read_to_latest")
    assert json.loads(store.read_text())["positions"] == ends
    assert {p: p.stat().st_mtime_ns for p in files_ab} == files_ab  # only part C was read
    panes = read_panes(out)  # also checks that no pane was written twice with different data
    on_time = {k[:3]: v for k, v in panes.items() if k[3] == "ON_TIME"}
    assert_same_aggregates(on_time, expected_aggregates(part_a + part_b + part_c))
    assert set(panes) == {(*k, "ON_TIME", 0) for k in on_time}


FINALIZED = re.compile(r"eventhubs: partition (\d+) finalized up to offset (\d+)")


def _committed_offsets(bootstrap: str, hub: str, group: str) -> dict[int, int]:
    """The consumer group's committed next offset per partition (absent: nothing committed)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        answer = consumer.committed([TopicPartition(hub, p) for p in range(EVENTHUBS_PARTITIONS)], timeout=30)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in answer if tp.offset >= 0}


def test_killed_eventhubs_run_commits_no_consumer_group_offsets(kafka_service, tmp_path):
    """With --eventhubs_commit_offsets the local runner finalizes every read bundle long before it
    writes a window. A run SIGKILLed after all its bundles were finalized has committed no offset
    to the consumer group, so a run that starts from the committed offsets reads every event and
    counts each once; that run, having succeeded, commits each partition's next offset."""
    bootstrap = kafka_service.bootstrap
    hub = f"commit-{uuid.uuid4().hex[:8]}"
    create_hub(bootstrap, hub, EVENTHUBS_PARTITIONS)
    events = good_events(900, seed=4, start_ms=BASE_MS, prefix="g")
    ends: dict[str, str] = {}
    _produce_events(bootstrap, hub, events, ends)
    last = {int(p): int(o) - 1 for p, o in ends.items()}
    args = ["--source", f"eventhubs://local/{hub}?consumer_group=analytics", "--kafka_bootstrap", bootstrap,
            "--eventhubs_security_protocol", "plaintext", "--eventhubs_max_partitions", str(EVENTHUBS_PARTITIONS),
            "--eventhubs_commit_offsets", "--streaming"]
    finalized: dict[int, int] = {}

    def all_finalized(line: str) -> bool:
        match = FINALIZED.search(line)
        if match:
            partition, offset = int(match.group(1)), int(match.group(2))
            finalized[partition] = max(offset, finalized.get(partition, -1))
        return finalized == last

    # SIGKILL once every bundle was finalized: where commits on finalization would lose data.
    _kill_when({}, [*args, "--max_read_time", "600", "--output", str(tmp_path / "run1")], all_finalized)
    assert finalized == last
    assert not list((tmp_path / "run1").rglob("*.jsonl"))  # no window was written
    assert _committed_offsets(bootstrap, hub, "analytics") == {}

    run_cli({}, *args, "--eventhubs_start_position", "committed", "--eventhubs_read_to_latest",
            "--output", str(tmp_path / "run2"))
    assert_same_aggregates(final_aggregates(read_panes(tmp_path / "run2")), expected_aggregates(events))
    assert _committed_offsets(bootstrap, hub, "analytics") == {int(p): int(o) for p, o in ends.items()}
