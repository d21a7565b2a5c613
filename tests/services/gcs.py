"""Google Cloud Storage via gcp-storage-emulator (in-memory, batch requests work)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from ._base import (
    HOST,
    Controllable,
    LocalProcess,
    ServiceHandle,
    free_port,
    http_probe,
    require_module,
)
from ._gcp import PROJECT_ID, fake_adc_file


@dataclass(frozen=True)
class GcsService(Controllable):
    endpoint_url: str  # "http://127.0.0.1:PORT", the STORAGE_EMULATOR_HOST value
    project_id: str = PROJECT_ID
    handle: ServiceHandle = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def env(self) -> dict[str, str]:
        """STORAGE_EMULATOR_HOST, a project id and offline dummy credentials."""
        return {
            "STORAGE_EMULATOR_HOST": self.endpoint_url,
            "GOOGLE_CLOUD_PROJECT": self.project_id,
            "GOOGLE_APPLICATION_CREDENTIALS": fake_adc_file(),
        }

    def client(self) -> Any:
        """A google.cloud.storage.Client with anonymous credentials."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=self.project_id,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint_url},
        )


def start_gcs(port: int | None = None) -> GcsService:
    """Start gcp-storage-emulator. It is pure Python, so container mode runs it locally too."""
    require_module("gcp_storage_emulator", "gcp-storage-emulator")
    port = port or free_port()
    endpoint = f"http://{HOST}:{port}"
    argv = [sys.executable, "-m", "gcp_storage_emulator", "start",
            "--host", HOST, "--port", str(port), "--in-memory"]
    handle = LocalProcess("gcs-emulator", argv, http_probe(f"{endpoint}/storage/v1/b"))
    handle.start()
    return GcsService(endpoint_url=endpoint, handle=handle)
