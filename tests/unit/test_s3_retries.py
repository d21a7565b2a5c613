"""The S3 sink's boto3 client retries in standard mode with 16 attempts unless the AWS
configuration (AWS_MAX_ATTEMPTS, AWS_RETRY_MODE) says otherwise; Beam's S3 options still apply."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.store_clients import S3_WRITE_ATTEMPTS, s3_client, s3_store_client


@pytest.fixture(autouse=True)
def _no_aws_retry_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no profile of the machine's


def test_the_sink_client_retries_in_standard_mode_by_default() -> None:
    """Beam's S3 wrapper carries a client with standard retries and Beam's endpoint and region."""
    options = PipelineOptions(["--s3_endpoint_url=http://127.0.0.1:9", "--s3_region_name=eu-west-1"])
    client = s3_store_client(options).client
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": S3_WRITE_ATTEMPTS}
    assert (client.meta.endpoint_url, client.meta.region_name) == ("http://127.0.0.1:9", "eu-west-1")


def test_aws_configuration_overrides_the_attempts_and_can_ask_for_adaptive(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_MAX_ATTEMPTS sets the attempts; AWS_RETRY_MODE=adaptive is kept, legacy is not."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    assert s3_client(PipelineOptions([])).meta.config.retries == {"mode": "adaptive", "total_max_attempts": 3}
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")
    assert s3_client(PipelineOptions([])).meta.config.retries["mode"] == "standard"


def test_an_explicit_retry_config_wins() -> None:
    """A caller's own `retries` (a short look-up, say) is used as given."""
    client = s3_client(PipelineOptions([]), retries={"max_attempts": 2})
    assert client.meta.config.retries["total_max_attempts"] == 3
