"""Kinesis via kinesalite (real GetRecords/PutRecords caps, no resharding API)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

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
    Probe,
    ServiceHandle,
    free_port,
    require_npm_bin,
)
from ._containers import ContainerProcess, use_containers

SERVER_JS = Path(__file__).with_name("kinesalite_server.js")
LOCALSTACK_IMAGE = "localstack/localstack:3.8"


@dataclass(frozen=True)
class KinesisService(Controllable):
    endpoint_url: str
    region: str = AWS_REGION
    access_key_id: str = AWS_ACCESS_KEY_ID
    secret_access_key: str = AWS_SECRET_ACCESS_KEY
    handle: ServiceHandle = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def env(self) -> dict[str, str]:
        """AWS_ENDPOINT_URL(+_KINESIS), dummy credentials and region."""
        return aws_env(self.endpoint_url, self.region, ("kinesis",))

    def client(self, **config: Any) -> Any:
        """A boto3 Kinesis client bound to this endpoint (botocore Config kwargs)."""
        return boto3_client("kinesis", self.endpoint_url, self.region, **config)


def _probe(port: int) -> Probe:
    return boto3_probe("kinesis", "list_streams", f"http://{HOST}:{port}")


def start_kinesis(port: int | None = None, data_dir: Path | None = None) -> KinesisService:
    """Start a kinesalite (or, in container mode, LocalStack Kinesis) server.

    With `data_dir` (local mode) streams are kept on disk there, so they survive stop()/start()."""
    if use_containers():
        handle: Any = ContainerProcess(
            "kinesis", LOCALSTACK_IMAGE, 4566, _probe, env={"SERVICES": "kinesis"}, host_port=port
        )
        port = handle.host_port
    else:
        require_npm_bin("kinesalite")
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is not on PATH: install Node.js 18+ and run `npm ci`", pytrace=False)
        port = port or free_port()
        argv = [node, str(SERVER_JS), str(port), *([str(data_dir)] if data_dir else [])]
        handle = LocalProcess("kinesalite", argv, _probe(port))
    handle.start()
    return KinesisService(endpoint_url=f"http://{HOST}:{port}", handle=handle)
