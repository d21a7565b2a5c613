"""The CLI's live progress and --metrics_port on local runs, on a paced synthetic job of a few seconds.

Under a pseudo-terminal the progress is one line rewritten in place (carriage return, erase) and
cleared before the summary; with --progress off nothing but the summary; without a terminal,
one log line a second. --metrics_port is scraped while a streaming job runs on Prism.
"""

from __future__ import annotations

import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.progress import CLEAR_LINE
from runners.prism import installed_binary

REPO = Path(__file__).resolve().parents[2]
EVENTS = 12_000
# About 3 s of reading at 4,000 events/s: long enough for a few updates, short for the suite.
SOURCE = f"synthetic://?events={EVENTS}&keys=5&seed=7&rate=4000"
UPDATE = re.compile(
    r"\[\d+ s\] records ([\d,]+) \| [\d,]+ events/s \| dead letters [\d,]+ \| watermark \S+.*? \| "
    r"source lag \S+.*? \| files [\d,]+"
)


def _cli(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.run", "--source", SOURCE, "--output", str(tmp_path / "out"), *extra]


def _run_in_pty(argv: list[str], columns: int = 200) -> tuple[int, str]:
    """Runs `argv` with stdout and stderr on a pseudo-terminal; returns its exit code and all it wrote."""
    master, slave = pty.openpty()
    # A wide terminal, so that the whole line fits (the line is cut to the terminal's width).
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_progress_is_one_updating_line_on_a_terminal_cleared_before_the_summary(tmp_path):
    code, text = _run_in_pty(_cli(tmp_path))
    assert code == 0, text
    text = text.replace("\r\n", "\n")  # the terminal's own newline translation
    updates = [m for m in re.finditer(re.escape(CLEAR_LINE) + UPDATE.pattern, text)]
    assert len(updates) >= 2, f"expected several in-place updates:\n{text!r}"
    counts = [int(m.group(1).replace(",", "")) for m in updates]
    assert counts == sorted(counts) and 0 < counts[-1] <= EVENTS
    assert any(0 < c < EVENTS for c in counts), f"no update while the job ran: {counts}"
    # Updates never end a line: each rewrites the same one, and the last is erased before the summary.
    assert "\n" not in text[updates[0].start():updates[-1].end()]
    tail = text[updates[-1].end():]
    assert tail.startswith(CLEAR_LINE), tail[:80]
    assert re.search(rf"^records read\s+{EVENTS:,}\s", tail[len(CLEAR_LINE):], re.M), tail


def test_progress_off_prints_no_progress(tmp_path):
    code, text = _run_in_pty(_cli(tmp_path, "--progress", "off"))
    assert code == 0, text
    assert not UPDATE.search(text) and CLEAR_LINE not in text and "events/s" not in text, text
    assert re.search(rf"^records read\s+{EVENTS:,}\s", text, re.M), text


def test_progress_without_a_terminal_is_a_log_line_a_second(tmp_path):
    proc = subprocess.run(_cli(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if " progress: " in line]
    assert len(lines) >= 2, proc.stderr
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d progress: " + UPDATE.pattern, line) for line in lines), lines
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    # The summary keeps its form, on stdout.
    assert re.match(rf"records read\s+{EVENTS:,}\s", proc.stdout), proc.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def _value(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


@pytest.mark.skipif(not installed_binary().exists(), reason="prism is not installed (make install)")
def test_metrics_port_serves_the_counters_in_prometheus_text_during_a_streaming_run(tmp_path):
    port = _free_port()
    argv = _cli(tmp_path, "--runner", "PrismRunner", "--streaming", "--window", "fixed:2",
                "--metrics_port", str(port), "--progress", "off")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scraped = None
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            text = _scrape(port)
            read = _value(text, "analytics_records_read_total") if text else None
            if read and read < EVENTS:
                scraped = text
                break
            time.sleep(0.2)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert scraped, f"no scrape saw the counters while the job ran:\n{err}"
    assert "# TYPE analytics_records_read_total counter" in scraped
    assert "# TYPE analytics_events_decoded_total counter" in scraped
    assert _value(scraped, "analytics_events_decoded_total") is not None
    assert f"metrics: http://127.0.0.1:{port}/metrics" in err
    assert _scrape(port) is None, "the endpoint outlived the run"


def test_metrics_port_in_use_is_refused_before_the_run(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = subprocess.run(_cli(tmp_path, "--metrics_port", str(port)), cwd=REPO, capture_output=True,
                              text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"--metrics_port {port}" in proc.stderr and "in use" in proc.stderr
    assert "Reading " not in proc.stderr and not (tmp_path / "out").exists()
