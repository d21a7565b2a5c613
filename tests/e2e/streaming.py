"""Local streaming runs of the CLI on Prism, for the tests that feed a live stream while a job
reads it: the job as a child process followed line by line, a feed of events stamped with the
wall clock, waiting for EARLY and ON_TIME panes, and a clean stop on SIGINT (Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.reliability.helpers import (
    CLAIMED,
    assert_same_aggregates,
    claim_marking_cli,
    encode,
    expected_aggregates,
    final_aggregates,
    read_panes,
    read_records,
)

REPO = Path(__file__).resolve().parents[2]
WINDOW_S = 2
FEED_S = 8.0  # of events while the job runs, after its first claim
PANES_WITHIN_S = 40.0
# Long enough that no fed event arrives after its window's state is gone, even on a loaded machine:
# Prism then starts the window afresh (a LATE pane of only the stragglers) where Beam's model, and
# Dataflow and Flink, drop them.
ALLOWED_LATENESS_S = 10


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


def feed_while_running(runs: StreamingRun | Sequence[StreamingRun], send: Callable[[list[bytes]], None]) -> list[dict]:
    """Feeds events until every job has claimed its first record, then for FEED_S seconds more."""
    runs = [runs] if isinstance(runs, StreamingRun) else list(runs)
    fed: list[dict] = []
    deadline = time.monotonic() + 90
    until = None
    while until is None or time.monotonic() < until:
        for run in runs:
            assert run.proc.poll() is None, run.stderr()
        waiting = [run for run in runs if not run.claimed.is_set()]
        assert time.monotonic() < deadline, "a job claimed nothing within 90 s:\n" + "".join(
            run.stderr() for run in waiting
        )
        batch = live_events(f"e{len(fed)}-", 20)
        send(encode(batch))
        fed += batch
        if until is None and not waiting:
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
    for path in files:  # every file whole: it parses to the end
        read_records(path)
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


