"""Credentials never leak: a secret passed through the environment appears in no output file,
dead letter, log line or error text, of a successful run or of a failing one, even with DEBUG
logging of every library."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.reliability.helpers import REPO, encode, good_events, malformed_json, write_lines

pytestmark = pytest.mark.integration
DEBUG_WRAPPER = (
    "import logging, runpy; logging.basicConfig(level=logging.DEBUG); "
    "runpy.run_module('pipelines.run', run_name='__main__')"
)


def _run(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DEBUG_WRAPPER, *argv], cwd=REPO, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=240)


def _assert_absent(secret: str, done: subprocess.CompletedProcess, *trees: Path) -> None:
    assert secret not in done.stdout
    assert secret not in done.stderr
    for tree in trees:
        for path in tree.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"secret found in {path}"


def test_azure_key_absent_from_success_and_failure(azurite_service, tmp_path):
    """The account key (in AZURE_STORAGE_CONNECTION_STRING) is in no file, log or error: a run
    with dead letters that succeeds, and a run whose container does not exist that fails."""
    write_lines(tmp_path / "in.jsonl", encode(good_events(300, seed=31)) + [p for _, p in malformed_json(0)])
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite_service.connection_string}
    secret = azurite_service.account_key
    container = f"creds-{uuid.uuid4().hex[:8]}"
    azurite_service.client().create_container(container)
    common = ["--source", f"file://{tmp_path}/in.jsonl", "--sink_region", "westeurope",
              "--dead_letter", str(tmp_path / "dead")]

    ok = _run(env, *common, "--output", f"azfs://{azurite_service.account_name}/{container}/agg")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert len(list((tmp_path / "dead").rglob("*.jsonl"))) >= 1  # the dead letters were written
    _assert_absent(secret, ok, tmp_path)
    blobs = azurite_service.client().get_container_client(container)
    for blob in blobs.list_blobs():
        assert secret.encode() not in blobs.download_blob(blob.name).readall()

    failed = _run(env, *common, "--output", f"azfs://{azurite_service.account_name}/missing-{container}/agg")
    assert failed.returncode != 0
    assert "missing-" in failed.stderr  # the error names what was wrong
    _assert_absent(secret, failed, tmp_path)


def test_aws_secret_absent_from_a_failing_kinesis_run(kinesis_service, tmp_path):
    """AWS_SECRET_ACCESS_KEY appears in no log or error of a run reading a stream that does
    not exist."""
    secret = f"S3cr3t{uuid.uuid4().hex}"
    env = {**kinesis_service.env(), "AWS_SECRET_ACCESS_KEY": secret}
    done = _run(env, "--source", "kinesis://no-such-stream?region=us-east-1", "--kinesis_read_to_latest",
                "--output", str(tmp_path / "out"))
    assert done.returncode != 0
    assert "no-such-stream" in done.stderr
    _assert_absent(secret, done, tmp_path)
