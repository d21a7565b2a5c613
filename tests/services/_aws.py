"""Fields and helpers shared by the AWS-compatible services (kinesalite, moto)."""

from __future__ import annotations

from typing import Any

from ._base import Probe

AWS_REGION = "us-east-1"
AWS_ACCESS_KEY_ID = "testing"
AWS_SECRET_ACCESS_KEY = "testing"


def aws_env(endpoint_url: str, region: str, services: tuple[str, ...]) -> dict[str, str]:
    """Environment for boto3/Beam: dummy creds, region, generic + per-service endpoints."""
    env = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",  # never wait on the metadata endpoint
    }
    for service in services:
        env[f"AWS_ENDPOINT_URL_{service.upper()}"] = endpoint_url
    return env


def boto3_client(service: str, endpoint_url: str, region: str, **config: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=AWS_ACCESS_KEY_ID,
        aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
        config=Config(**config) if config else None,
    )


def boto3_probe(service: str, call: str, endpoint_url: str) -> Probe:
    """Ready once the official client gets an answer to a cheap list call."""

    def probe() -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        client = boto3_client(
            service,
            endpoint_url,
            AWS_REGION,
            connect_timeout=1,
            read_timeout=2,
            retries={"max_attempts": 1},
        )
        try:
            getattr(client, call)()
        except (BotoCoreError, ClientError):
            return False
        return True

    return probe
