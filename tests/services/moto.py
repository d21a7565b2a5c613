"""S3 and Kinesis (with resharding and stream consumers) via one moto server."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from ._aws import (
    AWS_ACCESS_KEY_ID,
    AWS_REGION,
    AWS_SECRET_ACCESS_KEY,
    aws_env,
    boto3_client,
    boto3_probe,
)
from ._base import (
    HOST,
    Controllable,
    LocalProcess,
    ServiceHandle,
    free_port,
    require_module,
)


@dataclass(frozen=True)
class MotoService(Controllable):
    endpoint_url: str
    region: str = AWS_REGION
    access_key_id: str = AWS_ACCESS_KEY_ID
    secret_access_key: str = AWS_SECRET_ACCESS_KEY
    handle: ServiceHandle = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def env(self) -> dict[str, str]:
        """AWS_ENDPOINT_URL(+_S3, +_KINESIS), dummy credentials and region.

        Merge as {**moto_service.env(), **kinesis_service.env()} to send S3 to
        moto and Kinesis to kinesalite.
        """
        return aws_env(self.endpoint_url, self.region, ("s3", "kinesis"))

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client (e.g. "s3", "kinesis") bound to this endpoint."""
        return boto3_client(service, self.endpoint_url, self.region, **config)


def start_moto(port: int | None = None) -> MotoService:
    """Start a moto server. It is pure Python, so container mode runs it locally too."""
    require_module("moto.server", "moto[server]")
    require_module("flask", "moto[server]")
    port = port or free_port()
    endpoint = f"http://{HOST}:{port}"
    handle = LocalProcess(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        boto3_probe("s3", "list_buckets", endpoint),
    )
    handle.start()
    return MotoService(endpoint_url=endpoint, handle=handle)
