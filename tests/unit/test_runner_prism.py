"""The PrismRunner and PortableRunner profiles, and the Makefile rule that installs Prism."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import apache_beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, PrismRunnerOptions, StandardOptions

import runners
from runners import ProfileError, portable, prism

REPO = Path(__file__).resolve().parents[2]
VERSION = f"v{apache_beam.__version__}"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An installed Prism in a private cache: a binary and the stamp `make install` writes."""
    binary, stamp = tmp_path / "bin" / "prism", tmp_path / "prism.version"
    binary.parent.mkdir()
    binary.write_bytes(b"#!/bin/sh\n")
    stamp.write_text(VERSION + "\n")
    monkeypatch.setattr(prism, "PRISM_BIN", binary)
    monkeypatch.setattr(prism, "PRISM_STAMP", stamp)
    return tmp_path


def options(*args: str) -> PipelineOptions:
    return PipelineOptions(list(args))


# --- lookup ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,module", [("PrismRunner", prism), ("prism", prism), ("PortableRunner", portable)])
def test_profile_for_finds_the_local_portable_runners(name, module):
    assert runners.profile_for(name) is module


def test_unknown_runner_lists_prism_and_portable():
    with pytest.raises(ProfileError, match=r"PrismRunner, PortableRunner"):
        runners.profile_for("SamzaRunner")


# --- PrismRunner ----------------------------------------------------------------------


def test_prism_points_beam_at_the_installed_binary(cache):
    opts = options("--runner=PrismRunner")
    runners.apply_profile(opts)
    assert opts.view_as(PrismRunnerOptions).prism_location == str(cache / "bin" / "prism")
    assert opts.view_as(PortableOptions).environment_type == "LOOPBACK"
    assert opts.view_as(PrismRunnerOptions).prism_log_level == "warn"
    assert opts.view_as(StandardOptions).runner == "PrismRunner"
    assert not opts.view_as(StandardOptions).streaming


def test_prism_keeps_explicit_choices(cache, tmp_path):
    other = tmp_path / "my-prism"
    other.write_bytes(b"")
    opts = prism.build_options(
        args=[f"--prism_location={other}", "--environment_type=docker", "--prism_log_level=debug"]
    )
    assert opts.view_as(PrismRunnerOptions).prism_location == str(other)
    assert opts.view_as(PortableOptions).environment_type == "DOCKER"
    assert opts.view_as(PrismRunnerOptions).prism_log_level == "debug"


def test_prism_turns_streaming_on_for_an_unbounded_source(cache):
    opts = prism.build_options({"source": "kinesis://clicks?region=eu-west-1", "region": "eu-west-1"})
    assert opts.view_as(StandardOptions).streaming
    assert runners._common.pipeline_option(opts, "sink_region") == "eu-west-1"


def test_missing_prism_names_make_install(cache):
    (cache / "bin" / "prism").unlink()
    with pytest.raises(ProfileError, match=rf"Prism {VERSION} is not installed at .*/bin/prism; run `make install`"):
        runners.apply_profile(options("--runner=PrismRunner"))


def test_prism_without_its_stamp_counts_as_missing(cache):
    (cache / "prism.version").unlink()
    with pytest.raises(ProfileError, match=r"is not installed.*make install"):
        runners.apply_profile(options("--runner=PrismRunner"))


def test_prism_of_another_release_names_both_and_make_install(cache):
    (cache / "prism.version").write_text("v2.60.0\n")
    with pytest.raises(ProfileError, match=rf"is v2\.60\.0, not {VERSION}.*run `make install`"):
        runners.apply_profile(options("--runner=PrismRunner"))


def test_missing_prism_without_go_says_go_is_missing(cache, monkeypatch):
    (cache / "bin" / "prism").unlink()
    monkeypatch.setenv("PATH", str(cache))
    with pytest.raises(ProfileError, match=r"Go is not on PATH: install Go 1\.26 or newer"):
        runners.apply_profile(options("--runner=PrismRunner"))


@pytest.mark.parametrize("location", ["/nowhere/prism", "file:///nowhere/prism"])
def test_prism_location_must_be_a_file(cache, location):
    with pytest.raises(ProfileError, match=r"--prism_location=.*nowhere/prism is not a file; run `make install`"):
        runners.apply_profile(options("--runner=PrismRunner", f"--prism_location={location}"))


def test_prism_refuses_an_unknown_environment(cache):
    with pytest.raises(ProfileError, match=r"--environment_type=k8s is unknown; use one of LOOPBACK"):
        runners.apply_profile(options("--runner=PrismRunner", "--environment_type=k8s"))


# --- PortableRunner -------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["localhost:8073", "127.0.0.1:8073", "[::1]:8073"])
def test_portable_local_job_server_runs_the_harness_here(endpoint):
    opts = portable.build_options(args=[f"--job_endpoint={endpoint}"])
    assert opts.view_as(PortableOptions).environment_type == "LOOPBACK"
    assert opts.view_as(StandardOptions).runner == "PortableRunner"


def test_portable_remote_job_server_with_a_worker_pool():
    opts = portable.build_options(
        {"job_endpoint": "jobs.internal:8099", "source": "pubsub://projects/p/subscriptions/s"},
        environment_type="external",
        environment_config="localhost:50000",
    )
    assert opts.view_as(PortableOptions).environment_type == "EXTERNAL"
    assert opts.view_as(StandardOptions).streaming


def test_portable_requires_a_job_endpoint():
    with pytest.raises(ProfileError, match=r"--job_endpoint is missing: pass the job server's HOST:PORT"):
        runners.apply_profile(options("--runner=PortableRunner"))


@pytest.mark.parametrize("endpoint", ["localhost", "http://localhost:8073", "localhost:0", "localhost:70000", ":8073"])
def test_portable_refuses_a_malformed_endpoint(endpoint):
    with pytest.raises(ProfileError, match=rf"--job_endpoint={endpoint} is malformed: expected HOST:PORT"):
        runners.apply_profile(options("--runner=PortableRunner", f"--job_endpoint={endpoint}"))


@pytest.mark.parametrize(
    "extra,message",
    [
        ((), r"--environment_type is missing: a remote job server cannot reach this process"),
        (("--environment_type=LOOPBACK",), r"LOOPBACK only works with a job server on this machine"),
        (("--environment_type=EXTERNAL",), r"--environment_config is missing: .*HOST:PORT"),
        (("--environment_type=EXTERNAL", "--environment_config=pool"), r"--environment_config=pool is malformed"),
    ],
)
def test_portable_remote_job_server_needs_a_reachable_environment(extra, message):
    with pytest.raises(ProfileError, match=message):
        runners.apply_profile(options("--runner=PortableRunner", "--job_endpoint=10.0.0.7:8099", *extra))


# --- make install ---------------------------------------------------------------------


def make(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path} if path is not None else None
    return subprocess.run(
        [shutil.which("make") or "make", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True,
        env=env, timeout=60,
    )


def test_make_installs_prism_when_missing_or_of_another_release(tmp_path):
    cache = f"PRISM_CACHE={tmp_path}"
    plan = make("-n", "prism", cache).stdout
    assert f"GOBIN={tmp_path}/bin go install github.com/apache/beam/sdks/v2/go/cmd/prism@{VERSION}" in plan
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "prism").write_bytes(b"")
    (tmp_path / "prism.version").write_text(VERSION + "\n")
    assert "go install" not in make("-n", "prism", cache).stdout
    (tmp_path / "prism.version").write_text("v2.60.0\n")
    assert "go install" in make("-n", "prism", cache).stdout
    (tmp_path / "prism.version").write_text(VERSION + "\n")
    (tmp_path / "bin" / "prism").unlink()
    assert "go install" in make("-n", "prism", cache).stdout


def test_make_install_includes_prism_unless_skipped(tmp_path):
    cache = f"PRISM_CACHE={tmp_path}"
    assert "go install" in make("-n", "install", cache).stdout
    assert "go install" not in make("-n", "install", cache, "SKIP_PRISM=1").stdout


def test_make_without_go_fails_with_the_fix(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("sh", "sed", "cat", "mkdir", "rm"):
        (tools / tool).symlink_to(shutil.which(tool))
    result = make("prism", f"PRISM_CACHE={tmp_path / 'cache'}", path=str(tools))
    assert result.returncode != 0
    assert "`go` is not on PATH: install Go 1.26 or newer" in result.stderr
    assert "make install SKIP_PRISM=1" in result.stderr
    assert not (tmp_path / "cache" / "prism.version").exists()


def test_the_prism_cache_is_git_ignored():
    assert ".cache/" in (REPO / ".gitignore").read_text().splitlines()
    assert str(prism.PRISM_BIN).startswith(str(REPO / ".cache" / "runners"))
