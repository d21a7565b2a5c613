"""Shared plumbing: free ports, readiness waits and process lifecycles.

Every service runs as a child process in its own process group, bound to
127.0.0.1 on a free port, with its output in a temporary log file. Stopping a
service signals the whole group so wrapper scripts (node, java launchers,
pyenv shims) cannot leave orphans behind.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = float(os.environ.get("TEST_SERVICES_START_TIMEOUT", "60"))

Probe = Callable[[], bool]


class ServiceStartError(RuntimeError):
    """A test service did not come up; the message carries its log tail."""


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def tcp_probe(port: int, host: str = HOST) -> Probe:
    """Ready once something accepts TCP connections on the port."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return probe


def http_probe(url: str) -> Probe:
    """Ready once the URL answers with any HTTP status (errors included)."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # the server answered; an auth or 404 status is fine
        except (urllib.error.URLError, OSError):
            return False

    return probe


def require_module(module: str, pip_name: str) -> None:
    """Fail (never skip) with an install hint when a Python package is missing."""
    if importlib.util.find_spec(module) is None:
        pytest.fail(
            f"Python package {pip_name!r} is missing: pip install -e '.[test]' "
            f"(or pip install '{pip_name}')",
            pytrace=False,
        )


def require_npm_bin(name: str) -> Path:
    """Return node_modules/.bin/<name>, failing with the install hint if absent."""
    path = REPO_ROOT / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(
            f"{path} not found: run `npm ci` (or `make test`) in {REPO_ROOT}",
            pytrace=False,
        )
    return path


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty log>"


class ServiceHandle(Protocol):
    """What a service dataclass needs from its back end (process or container)."""

    name: str
    startup_seconds: float

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def wait_ready(
    name: str,
    probe: Probe,
    log: Path | None,
    alive: Callable[[], bool],
    timeout: float = START_TIMEOUT_S,
    log_text: Callable[[], str] | None = None,
) -> float:
    """Poll probe() until it succeeds; return seconds waited or raise with the log tail."""
    started = time.monotonic()
    while True:
        if probe():
            return time.monotonic() - started
        reason = None
        if not alive():
            reason = "exited before it became ready"
        elif time.monotonic() - started > timeout:
            reason = f"not ready after {timeout:.0f}s"
        if reason:
            tail = log_text() if log_text else (log_tail(log) if log else "<no log>")
            raise ServiceStartError(f"{name} {reason}. Log tail ({log}):\n{tail}")
        time.sleep(0.1)


_LIVE: set[LocalProcess] = set()


class LocalProcess:
    """A server subprocess that can be stopped and restarted on the same port."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        probe: Probe,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = START_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.probe = probe
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.timeout = timeout
        # Private work dir: the cwd (some servers drop files there) and the log.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"test-service-{name}-"))
        self.log_path = self.workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            log.write(f"--- start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd or self.workdir,
                start_new_session=True,  # own process group, killed as a whole
            )
        _LIVE.add(self)
        try:
            self.startup_seconds = wait_ready(
                self.name, self.probe, self.log_path, lambda: self.running, self.timeout
            )
        except ServiceStartError:
            self.stop()
            raise

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the process group, then kill it if it lingers."""
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # The leader may exit before its children; sweep the group once more.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@atexit.register
def _kill_leftovers() -> None:
    # Safety net for interrupted sessions where fixture teardown did not run.
    for handle in list(_LIVE):
        handle.stop(grace=1.0)


class Controllable:
    """Mixin for the service dataclasses: outage helpers that keep the port."""

    handle: ServiceHandle

    @property
    def running(self) -> bool:
        return self.handle.running

    def stop(self) -> None:
        """Stop the server; clients see connection errors until start()."""
        self.handle.stop()

    def start(self) -> None:
        """Start the server again on the same port (in-memory state is lost)."""
        self.handle.start()

    def restart(self) -> None:
        self.handle.stop()
        self.handle.start()

    @contextlib.contextmanager
    def outage(self, seconds: float = 0.0) -> Iterator[None]:
        """Stop the server for the body of the with-block (plus `seconds`), then restart it."""
        self.handle.stop()
        try:
            time.sleep(seconds)
            yield
        finally:
            self.handle.start()
