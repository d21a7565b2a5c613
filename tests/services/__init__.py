"""Real local services for integration tests, one module per service.

Each ``start_*`` function launches a server on a free 127.0.0.1 port, waits
until it answers and returns a frozen dataclass with the endpoint, credentials,
``env()`` for subprocesses and ``stop()``/``start()``/``restart()``/``outage()``
to simulate outages on the same port. ``close()`` on the handle ends it for good.
The pytest fixtures in ``tests/conftest.py`` wrap these.
"""

from ._base import ServiceStartError, free_port
from .azurite import AzuriteService, start_azurite
from .gcs import GcsService, start_gcs
from .kafka import KafkaService, start_kafka
from .kinesis import KinesisService, start_kinesis
from .moto import MotoService, start_moto
from .pubsub import PubSubService, start_pubsub

__all__ = [
    "AzuriteService",
    "GcsService",
    "KafkaService",
    "KinesisService",
    "MotoService",
    "PubSubService",
    "ServiceStartError",
    "free_port",
    "start_azurite",
    "start_gcs",
    "start_kafka",
    "start_kinesis",
    "start_moto",
    "start_pubsub",
]
