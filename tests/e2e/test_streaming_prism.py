"""Local streaming through the CLI on Prism, one test per stream source.

Each test runs `python -m pipelines.run --runner PrismRunner --streaming --early_firing 0.5` on a
real emulator, feeds events stamped with the wall clock while the job runs, waits until EARLY
and ON_TIME panes of the fed windows are in the output, then sends SIGINT (Ctrl-C). The job must
stop cleanly: exit code 0, no partial (temporary) file, final panes equal to an independent
computation of the fed events, and the source's acknowledgements or offsets committed for
exactly what was written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.helpers import (
    CLAIMED,
    assert_same_aggregates,
    claim_marking_cli,
    encode,
    expected_aggregates,
    final_aggregates,
    kinesis_stream,
    put_kinesis,
    read_panes,
)
from tests.services.kafka import create_hub, produce

REPO = Path(__file__).resolve().parents[2]
WINDOW_S = 2
FEED_S = 8.0  # of events while the job runs, after its first claim
PANES_WITHIN_S = 40.0
ALLOWED_LATENESS_S = 3


def prism_args() -> list[str]:
    """--prism_location for the run: the profile's `make install` binary, else $PRISM_LOCATION."""
    from runners import ProfileError
    from runners.prism import installed_binary

    try:
        installed_binary()
        return []
    except ProfileError:
        found = os.environ.get("PRISM_LOCATION")
        if found and Path(found).is_file():
            return ["--prism_location", found]
    pytest.skip("Prism is not installed: run `make install` (or set PRISM_LOCATION to a prism binary)")


class StreamingRun:
    """The CLI as a child process, its stderr followed on a thread (claim markers, for the feed)."""

    def __init__(self, env: dict[str, str], argv: list[str]) -> None:
        self.lines: list[str] = []
        self.claimed = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", claim_marking_cli(), *argv], cwd=REPO, text=True,
            env={**os.environ, **env, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.stdout: list[str] = []
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()
        # stdout on its own thread: communicate() would also read stderr, racing the follower for lines.
        self._stdout_reader = threading.Thread(target=lambda: self.stdout.extend(self.proc.stdout), daemon=True)
        self._stdout_reader.start()

    def _follow(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.lines.append(line)
            if CLAIMED.match(line.strip()):
                self.claimed.set()

    def stop(self, timeout: float = 60) -> tuple[int, str]:
        """SIGINT, then the exit code and the stdout once the run has ended."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        self._stdout_reader.join(timeout=10)
        return self.proc.returncode, "".join(self.stdout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr(self) -> str:
        return "".join(self.lines)[-4000:]


def live_events(prefix: str, count: int) -> list[dict]:
    """`count` events stamped now (the reader's watermark follows the wall clock)."""
    now = int(time.time() * 1000)
    return [{"event_id": f"{prefix}{i}", "event_time": now, "region": ("us-east-1", "eu-west-1")[i % 2],
             "key": f"k{i % 3}", "value": i % 7} for i in range(count)]


def feed_while_running(run: StreamingRun, send: Callable[[list[bytes]], None]) -> list[dict]:
    """Feeds events until the job claims its first record, then for FEED_S seconds more."""
    fed: list[dict] = []
    deadline = time.monotonic() + 90
    until = None
    while until is None or time.monotonic() < until:
        assert run.proc.poll() is None, run.stderr()
        assert time.monotonic() < deadline, "the job claimed nothing within 90 s:\n" + run.stderr()
        batch = live_events(f"e{len(fed)}-", 20)
        send(encode(batch))
        fed += batch
        if until is None and run.claimed.is_set():
            until = time.monotonic() + FEED_S
        time.sleep(0.25)
    return fed


def windows_of(events: list[dict]) -> set[str]:
    return set(expected_aggregates(events, WINDOW_S).keys())


def wait_for_panes(run: StreamingRun, out: Path, fed: list[dict]) -> dict:
    """Waits until every fed (window, region, key) has an ON_TIME (or LATE) pane and two windows EARLY panes."""
    wanted = {(w, r, k) for w, r, k in windows_of(fed)}
    deadline = time.monotonic() + PANES_WITHIN_S
    while True:
        assert run.proc.poll() is None, run.stderr()
        panes = read_panes(out)
        on_time = {(w, r, k) for (w, r, k, pane, _) in panes if pane in ("ON_TIME", "LATE")}
        early_windows = {w for (w, _r, _k, pane, _) in panes if pane == "EARLY"}
        if wanted <= on_time and len(early_windows) >= 2:
            return panes
        assert time.monotonic() < deadline, (
            f"after {PANES_WITHIN_S:.0f} s: {len(wanted - on_time)} groups without ON_TIME pane, EARLY panes in "
            f"{len(early_windows)} windows\n" + run.stderr()
        )
        time.sleep(0.5)


def assert_stopped_cleanly(run: StreamingRun, out: Path, fed: list[dict]) -> None:
    code, stdout = run.stop()
    assert code == 0, run.stderr()
    # Searched in the whole stderr: progress lines keep coming while the open windows are written.
    assert "stopping: the reads end" in "".join(run.lines), run.stderr()
    assert "aggregates" in stdout
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and not [p for p in files if p.name.startswith(".")], "partial or temporary files left"
    for path in files:  # every file whole: each line parses
        for line in path.read_text().splitlines():
            json.loads(line)
    assert_same_aggregates(final_aggregates(read_panes(out)), expected_aggregates(fed, WINDOW_S))


def common_args(out: Path) -> list[str]:
    return [
        "--runner", "PrismRunner", *prism_args(), "--streaming", "--early_firing", "0.5",
        "--window", f"fixed:{WINDOW_S}", "--output", str(out), "--dead_letter", str(out.parent / "dead"),
        # Watermarks follow the service's clock (arrival, enqueue or publish time), which runs a
        # little ahead of the events' own times; late events then land in LATE panes, not lost.
        "--allowed_lateness", str(ALLOWED_LATENESS_S),
        *file_roll_args(),
    ]


def file_roll_args() -> list[str]:
    """Panes written as they fire (a one-second file roll) where the CLI gathers them into rolls."""
    from pipelines.run import _help_parser

    return ["--file_roll", "1"] if "--file_roll" in _help_parser()._option_string_actions else []


@pytest.fixture
def running() -> Iterator[list[StreamingRun]]:
    runs: list[StreamingRun] = []
    yield runs
    for run in runs:
        run.kill()


def test_kinesis_streams_early_and_on_time_panes_and_stops_on_sigint(kinesis_service, tmp_path, running):
    client = kinesis_service.client()
    # One shard: kinesalite can leave one of two concurrent first GetShardIterator calls unanswered.
    stream = kinesis_stream(client, 1, f"live-{uuid.uuid4().hex[:8]}")
    out = tmp_path / "out"
    run = StreamingRun(kinesis_service.env(), [
        *common_args(out), "--source", f"kinesis://{stream}?region={kinesis_service.region}",
        "--kinesis_endpoint_url", kinesis_service.endpoint_url, "--kinesis_start_position", "TRIM_HORIZON",
        "--kinesis_poll_interval", "0.2",
    ])
    running.append(run)
    fed = feed_while_running(run, lambda records: put_kinesis(client, stream, records))
    wait_for_panes(run, out, fed)
    assert_stopped_cleanly(run, out, fed)


def test_eventhubs_streams_panes_and_commits_offsets_of_what_was_written(kafka_service, tmp_path, running):
    from confluent_kafka import Consumer, TopicPartition

    hub = f"live-{uuid.uuid4().hex[:8]}"
    create_hub(kafka_service.bootstrap, hub, 2)
    out = tmp_path / "out"
    run = StreamingRun({}, [
        *common_args(out), "--source", f"eventhubs://local/{hub}?consumer_group=analytics",
        "--kafka_bootstrap", kafka_service.bootstrap, "--eventhubs_security_protocol", "plaintext",
        "--eventhubs_max_partitions", "2", "--eventhubs_commit_offsets",
    ])
    running.append(run)
    fed = feed_while_running(run, lambda records: produce(kafka_service.bootstrap, hub, records,
                                                         partition_of=lambda i: i % 2))
    wait_for_panes(run, out, fed)
    assert_stopped_cleanly(run, out, fed)
    # Offsets are committed once the run has succeeded, for every record it wrote: all of them.
    consumer = Consumer({"bootstrap.servers": kafka_service.bootstrap, "group.id": "analytics"})
    try:
        committed = consumer.committed([TopicPartition(hub, p) for p in (0, 1)], timeout=10)
    finally:
        consumer.close()
    assert sum(tp.offset for tp in committed) == len(fed)


def test_pubsub_streams_panes_and_acknowledges_what_was_written(pubsub_service, tmp_path, running):
    project = pubsub_service.project_id
    topic = f"projects/{project}/topics/live-{uuid.uuid4().hex[:8]}"
    sub = f"projects/{project}/subscriptions/live-{uuid.uuid4().hex[:8]}"
    publisher, subscriber = pubsub_service.publisher(), pubsub_service.subscriber()
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=30)
    out = tmp_path / "out"
    run = StreamingRun(pubsub_service.env(), [
        *common_args(out), "--source", f"pubsub://{sub}", "--pubsub_idle_watermark", "2",
        "--pubsub_bundle_seconds", "1", "--pubsub_max_messages", "200",
    ])
    running.append(run)

    def send(records: list[bytes]) -> None:
        for future in [publisher.publish(topic, record) for record in records]:
            future.result(timeout=30)

    fed = feed_while_running(run, send)
    wait_for_panes(run, out, fed)
    assert_stopped_cleanly(run, out, fed)
    # Everything written was acknowledged: nothing is delivered again.
    response = subscriber.pull(subscription=sub, max_messages=100, timeout=10, return_immediately=True)
    assert list(response.received_messages) == []


def test_fractional_early_firing_is_refused_where_the_runner_counts_whole_seconds(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "--source", "synthetic://?events=10", "--early_firing", "0.5",
         "--output", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--early_firing 0.5: fractions of a second need --runner PrismRunner" in done.stderr


def test_early_firing_trigger_keeps_milliseconds_and_names_its_late_trigger():
    from apache_beam.runners.pipeline_context import PipelineContext

    from transforms.windowing import build_trigger

    proto = build_trigger(0.25, 0).to_runner_api(PipelineContext()).after_end_of_window
    assert proto.early_firings.after_processing_time.timestamp_transforms[0].delay.delay_millis == 250
    # Without an explicit late trigger Prism falls back to one that fires after the window's end.
    assert proto.late_firings.element_count.element_count == 1
