"""Azure Blob Storage via Azurite (in-memory)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._base import (
    HOST,
    Controllable,
    LocalProcess,
    Probe,
    ServiceHandle,
    free_port,
    http_probe,
    require_npm_bin,
)
from ._containers import ContainerProcess, use_containers

AZURITE_IMAGE = "mcr.microsoft.com/azure-storage/azurite:3.35.0"
# Azurite's documented well-known development account.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class AzuriteService(Controllable):
    blob_endpoint: str
    account_name: str = ACCOUNT_NAME
    account_key: str = ACCOUNT_KEY
    handle: ServiceHandle = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    def env(self) -> dict[str, str]:
        """AZURE_STORAGE_CONNECTION_STRING plus account name and key."""
        return {
            "AZURE_STORAGE_CONNECTION_STRING": self.connection_string,
            "AZURE_STORAGE_ACCOUNT": self.account_name,
            "AZURE_STORAGE_KEY": self.account_key,
        }

    def client(self) -> Any:
        """An azure.storage.blob.BlobServiceClient for this account."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)


def _probe(port: int) -> Probe:
    return http_probe(f"http://{HOST}:{port}/{ACCOUNT_NAME}?comp=list")


def start_azurite(port: int | None = None, data_dir: Path | None = None) -> AzuriteService:
    """Start Azurite's blob service on loopback with in-memory persistence, or (local mode) with
    its blobs on disk in `data_dir`, so that they survive stop()/start()."""
    if use_containers():
        handle: Any = ContainerProcess(
            "azurite",
            AZURITE_IMAGE,
            10000,
            _probe,
            command="azurite-blob --blobHost 0.0.0.0 --blobPort 10000 --inMemoryPersistence "
            "--disableTelemetry --skipApiVersionCheck",
            host_port=port,
        )
        port = handle.host_port
    else:
        binary = require_npm_bin("azurite-blob")
        port = port or free_port()
        storage = ["--location", str(data_dir)] if data_dir else ["--inMemoryPersistence"]
        argv = [str(binary), "--blobHost", HOST, "--blobPort", str(port), *storage,
                "--disableTelemetry", "--skipApiVersionCheck", "--silent"]
        handle = LocalProcess("azurite", argv, _probe(port))
    handle.start()
    return AzuriteService(blob_endpoint=f"http://{HOST}:{port}/{ACCOUNT_NAME}", handle=handle)
