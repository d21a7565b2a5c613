"""--jurisdiction against real stores: the guard looks the bucket up over the wire (S3
GetBucketLocation on moto, the bucket's location on gcp-storage-emulator) and refuses, before
the pipeline starts, a sink outside the jurisdiction; an allowed combination runs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipelines.run import main

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SOURCE = "synthetic://?events=300&keys=3&seed=7"
EU_AWS = (
    "eu (European Union and EEA) allows aws regions eu-west-1, eu-west-3, eu-central-1, eu-north-1, eu-south-1, "
    "eu-south-2."
)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _keys(s3, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.fixture
def buckets(moto_service) -> tuple:
    s3 = moto_service.client("s3")
    us, eu = _name("us-bucket"), _name("eu-bucket")
    s3.create_bucket(Bucket=us)  # no LocationConstraint: us-east-1
    s3.create_bucket(Bucket=eu, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return s3, us, eu


def test_cli_refuses_eu_job_writing_to_us_east_1_bucket(moto_service, buckets) -> None:
    s3, us, _ = buckets
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), **moto_service.env()}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.run",
            "--source",
            SOURCE,
            "--output",
            f"s3://{us}/agg",
            "--jurisdiction",
            "eu",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --jurisdiction eu refuses the sink s3://{us}/agg: S3 bucket '{us}' is in us-east-1 "
        f"(us jurisdiction), from S3 GetBucketLocation; {EU_AWS}"
    )
    assert _keys(s3, us) == []  # refused before anything started


@pytest.fixture
def aws_env(moto_service, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in moto_service.env().items():
        monkeypatch.setenv(key, value)


def test_allowed_combinations_run(aws_env, buckets, capsys: pytest.CaptureFixture[str]) -> None:
    s3, us, eu = buckets
    assert main(["--source", SOURCE, "--output", f"s3://{eu}/agg", "--jurisdiction", "eu"]) == 0
    assert main(["--source", SOURCE, "--output", f"s3://{us}/agg", "--jurisdiction", "us"]) == 0
    for bucket in (eu, us):
        keys = _keys(s3, bucket)
        assert any(k.startswith("agg/dt=") and k.endswith(".jsonl") for k in keys), keys


def test_dead_letter_sink_is_checked_too(aws_env, buckets, capsys: pytest.CaptureFixture[str]) -> None:
    s3, us, eu = buckets
    argv = [
        "--source",
        SOURCE,
        "--output",
        f"s3://{eu}/agg",
        "--dead_letter",
        f"s3://{us}/dead",
        "--jurisdiction",
        "eu",
    ]
    assert main(argv) == 2
    assert f"refuses the dead-letter sink s3://{us}/dead: S3 bucket '{us}' is in us-east-1" in capsys.readouterr().err
    assert _keys(s3, eu) == [] and _keys(s3, us) == []


def test_sink_region_cannot_overrule_the_bucket(aws_env, buckets, capsys: pytest.CaptureFixture[str]) -> None:
    _, us, _ = buckets
    argv = ["--source", SOURCE, "--output", f"s3://{us}/agg", "--jurisdiction", "eu", "--sink_region", "eu-west-1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"refuses the sink s3://{us}/agg: S3 bucket '{us}' is in us-east-1 (us jurisdiction), from S3" in err


def test_missing_bucket_is_refused(aws_env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--source", SOURCE, "--output", "s3://no-such-bucket-here/agg", "--jurisdiction", "eu"]) == 2
    assert "cannot tell where the sink s3://no-such-bucket-here/agg is: S3 GetBucketLocation failed: NoSuchBucket" in (
        capsys.readouterr().err
    )


def test_gcs_us_bucket_refused_for_eu(gcs_service, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in gcs_service.env().items():
        monkeypatch.setenv(key, value)
    bucket = gcs_service.client().create_bucket(_name("gcs-us")).name  # the emulator's buckets are in US
    assert main(["--source", SOURCE, "--output", f"gs://{bucket}/agg", "--jurisdiction", "eu"]) == 2
    err = capsys.readouterr().err
    assert f"refuses the sink gs://{bucket}/agg: GCS bucket '{bucket}' is in US (us jurisdiction)" in err
    assert "eu (European Union and EEA) allows gcp regions europe-west1" in err
    assert list(gcs_service.client().list_blobs(bucket)) == []


def test_azure_needs_and_checks_sink_region(azurite_service, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_service.connection_string)
    container = _name("analytics")
    azurite_service.client().create_container(container)
    output = f"azfs://{azurite_service.account_name}/{container}/agg"
    base = ["--source", SOURCE, "--output", output, "--jurisdiction", "eu"]

    assert main(base) == 2
    assert "a storage account's region is only known to Azure Resource Manager" in capsys.readouterr().err
    assert main([*base, "--sink_region", "eastus"]) == 2
    assert (
        f"--jurisdiction eu refuses the sink {output}: Azure storage account 'devstoreaccount1' (container "
        f"'{container}') is in eastus (us jurisdiction), from --sink_region; eu (European Union and EEA) allows "
        "azure regions westeurope"
    ) in capsys.readouterr().err
    blobs = azurite_service.client().get_container_client(container)
    assert list(blobs.list_blobs()) == []
    assert main([*base, "--sink_region", "westeurope"]) == 0
    assert any(b.name.startswith("agg/dt=") for b in blobs.list_blobs())


def test_connection_string_on_command_line_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--source", SOURCE, "--output", "azfs://acct/cont/x", "--azure_connection_string", "Key=s3cret"]) == 2
    err = capsys.readouterr().err
    assert "AZURE_STORAGE_CONNECTION_STRING" in err and "s3cret" not in err
