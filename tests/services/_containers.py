"""Container back end, used when TEST_SERVICES=containers and Docker answers.

Each container publishes its port on 127.0.0.1 at a fixed free host port, so a
stop()/start() of the container keeps the endpoint the tests already hold.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Mapping

from ._base import HOST, Probe, free_port, require_module, wait_ready


@functools.cache
def use_containers() -> bool:
    """True when TEST_SERVICES=containers and a Docker engine answers.

    Without Docker the local processes are used instead (with a warning), so the
    same tests still run against real services.
    """
    if os.environ.get("TEST_SERVICES", "local").lower() != "containers":
        return False
    require_module("testcontainers", "testcontainers")
    import docker
    from docker.errors import DockerException

    try:
        docker.from_env().ping()
    except DockerException as exc:
        warnings.warn(
            f"TEST_SERVICES=containers but Docker is unavailable ({exc}); using local processes",
            stacklevel=2,
        )
        return False
    return True


class ContainerProcess:
    """A testcontainers container with the LocalProcess start/stop interface."""

    def __init__(
        self,
        name: str,
        image: str,
        container_port: int,
        probe_for_port: Callable[[int], Probe],
        command: str | None = None,
        env: Mapping[str, str] | None = None,
        host_port: int | None = None,
    ) -> None:
        from testcontainers.core.container import DockerContainer

        self.name = name
        self.host_port = host_port or free_port()
        self.probe = probe_for_port(self.host_port)
        self.container = DockerContainer(image)
        # docker-py takes (ip, port) to publish on loopback only; with_bind_ports cannot express that.
        self.container.ports[f"{container_port}/tcp"] = (HOST, self.host_port)
        if command:
            self.container = self.container.with_command(command)
        for key, value in (env or {}).items():
            self.container = self.container.with_env(key, value)
        self.started = False
        self.running = False
        self.startup_seconds = 0.0

    def _logs(self) -> str:
        out, err = self.container.get_logs()
        return (out + err).decode(errors="replace")[-4000:]

    def start(self) -> None:
        if not self.started:
            self.container.start()
        else:
            self.container.get_wrapped_container().start()
        self.started = self.running = True
        self.startup_seconds = wait_ready(
            self.name, self.probe, None, lambda: True, log_text=self._logs
        )

    def stop(self) -> None:
        if self.running:
            self.container.get_wrapped_container().stop(timeout=5)
            self.running = False

    def close(self) -> None:
        if self.started:
            self.container.stop()  # removes the container and its volumes
            self.started = self.running = False
