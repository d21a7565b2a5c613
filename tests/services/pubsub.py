"""Pub/Sub via Google's official emulator (Java, shipped with the Cloud SDK)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ._base import (
    HOST,
    Controllable,
    LocalProcess,
    Probe,
    ServiceHandle,
    free_port,
    http_probe,
)
from ._containers import ContainerProcess, use_containers
from ._gcp import PROJECT_ID, fake_adc_file

EMULATOR = Path(
    os.environ.get(
        "PUBSUB_EMULATOR_BIN",
        "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator",
    )
)
CLOUD_SDK_IMAGE = "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators"


@dataclass(frozen=True)
class PubSubService(Controllable):
    host: str  # "127.0.0.1:PORT", the PUBSUB_EMULATOR_HOST value
    project_id: str = PROJECT_ID
    handle: ServiceHandle = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def env(self) -> dict[str, str]:
        """PUBSUB_EMULATOR_HOST, a project id and offline dummy credentials."""
        return {
            "PUBSUB_EMULATOR_HOST": self.host,
            "PUBSUB_PROJECT_ID": self.project_id,
            "GOOGLE_CLOUD_PROJECT": self.project_id,
            "GOOGLE_APPLICATION_CREDENTIALS": fake_adc_file(),
        }

    def publisher(self) -> Any:
        """A pubsub_v1.PublisherClient on an insecure channel to the emulator."""
        from google.cloud import pubsub_v1
        from google.pubsub_v1.services.publisher.transports import (
            PublisherGrpcTransport,
        )

        return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=self._channel()))

    def subscriber(self) -> Any:
        """A pubsub_v1.SubscriberClient on an insecure channel to the emulator."""
        from google.cloud import pubsub_v1
        from google.pubsub_v1.services.subscriber.transports import (
            SubscriberGrpcTransport,
        )

        return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=self._channel()))

    def _channel(self) -> Any:
        import grpc

        return grpc.insecure_channel(self.host)


def _probe(port: int) -> Probe:
    return http_probe(f"http://{HOST}:{port}/")  # the emulator answers "Ok" on /


def start_pubsub(port: int | None = None) -> PubSubService:
    """Start the Pub/Sub emulator; fail (never skip) if it is not installed."""
    if use_containers():
        handle: Any = ContainerProcess(
            "pubsub",
            CLOUD_SDK_IMAGE,
            8085,
            _probe,
            command=f"gcloud beta emulators pubsub start --project={PROJECT_ID} --host-port=0.0.0.0:8085",
            host_port=port,
        )
        port = handle.host_port
    else:
        if not EMULATOR.exists():
            pytest.fail(
                f"Pub/Sub emulator not found at {EMULATOR}. Install it with "
                "`gcloud components install pubsub-emulator` (or the Debian package "
                "google-cloud-cli-pubsub-emulator), or set PUBSUB_EMULATOR_BIN.",
                pytrace=False,
            )
        if shutil.which("java") is None:
            pytest.fail("the Pub/Sub emulator needs a Java 11+ runtime on PATH", pytrace=False)
        port = port or free_port()
        argv = [str(EMULATOR), f"--host={HOST}", f"--port={port}"]
        handle = LocalProcess("pubsub-emulator", argv, _probe(port))
    handle.start()
    return PubSubService(host=f"{HOST}:{port}", handle=handle)
