"""Shared pytest configuration: markers and the real-service fixtures.

Service fixtures are session-scoped and lazy: a server starts the first time a
test asks for it and stops at session end. By default each is a local process
on 127.0.0.1; with TEST_SERVICES=containers (and Docker) the Node/Java ones run
in containers instead. Tests see the same dataclasses either way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

# Make `tests.services` importable however pytest was invoked (pytest or python -m pytest).
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.services import (  # noqa: E402 - needs the sys.path entry above
    AzuriteService,
    GcsService,
    KafkaService,
    KinesisService,
    MotoService,
    PubSubService,
    start_azurite,
    start_gcs,
    start_kafka,
    start_kinesis,
    start_moto,
    start_pubsub,
)

S = TypeVar("S")
_SESSION_SERVICES: list[Any] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: talks to real local services (emulators, brokers)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SESSION_SERVICES:
        timings = ", ".join(
            f"{svc.handle.name} {svc.handle.startup_seconds:.1f}s" for svc in _SESSION_SERVICES
        )
        terminalreporter.write_line(f"test services started (time to ready): {timings}")


def _session_service(start: Callable[[], S]) -> Iterator[S]:
    service = start()
    _SESSION_SERVICES.append(service)
    try:
        yield service
    finally:
        service.handle.close()  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _revive_stopped_services() -> Iterator[None]:
    # A test that stopped a shared service and then failed must not break the next test.
    yield
    for service in _SESSION_SERVICES:
        if not service.running:
            service.start()


@pytest.fixture(scope="session")
def kinesis_service() -> Iterator[KinesisService]:
    """kinesalite: Kinesis with the real GetRecords/PutRecords caps."""
    yield from _session_service(start_kinesis)


@pytest.fixture(scope="session")
def moto_service() -> Iterator[MotoService]:
    """moto server: S3 plus Kinesis resharding (split/merge/UpdateShardCount)."""
    yield from _session_service(start_moto)


@pytest.fixture(scope="session")
def azurite_service() -> Iterator[AzuriteService]:
    """Azurite blob service with the devstoreaccount1 well-known key."""
    yield from _session_service(start_azurite)


@pytest.fixture(scope="session")
def pubsub_service() -> Iterator[PubSubService]:
    """Google's Pub/Sub emulator."""
    yield from _session_service(start_pubsub)


@pytest.fixture(scope="session")
def gcs_service() -> Iterator[GcsService]:
    """gcp-storage-emulator (in-memory GCS JSON API)."""
    yield from _session_service(start_gcs)


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[KafkaService]:
    """tansu: a Kafka-protocol broker standing in for the Event Hubs Kafka endpoint."""
    yield from _session_service(start_kafka)


def _factory(start: Callable[..., S]) -> Iterator[Callable[..., S]]:
    started: list[Any] = []

    def make(port: int | None = None) -> S:
        service = start(port)
        started.append(service)
        return service

    yield make
    for service in started:
        service.handle.close()


@pytest.fixture
def kinesis_service_factory() -> Iterator[Callable[..., KinesisService]]:
    """Fresh, test-private kinesalite servers: call it (optionally with a port)."""
    yield from _factory(start_kinesis)


@pytest.fixture
def kafka_service_factory() -> Iterator[Callable[..., KafkaService]]:
    """Fresh, test-private tansu brokers."""
    yield from _factory(start_kafka)


@pytest.fixture
def pubsub_service_factory() -> Iterator[Callable[..., PubSubService]]:
    """Fresh, test-private Pub/Sub emulators."""
    yield from _factory(start_pubsub)
