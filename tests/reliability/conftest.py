"""Fixtures of the reliability suite: services whose data survives an outage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import AzuriteService, KinesisService, start_azurite, start_kinesis


@pytest.fixture
def durable_kinesis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinesisService]:
    """A private kinesalite keeping its streams on disk: stop()/start() is an outage, not a wipe."""
    service = start_kinesis(data_dir=Path(tmp_path_factory.mktemp("kinesalite-data")))
    try:
        yield service
    finally:
        service.handle.close()


@pytest.fixture
def durable_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteService]:
    """A private Azurite keeping its blobs on disk: stop()/start() is an outage, not a wipe."""
    service = start_azurite(data_dir=Path(tmp_path_factory.mktemp("azurite-data")))
    try:
        yield service
    finally:
        service.handle.close()
