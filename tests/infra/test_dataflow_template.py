"""The flex template and the Dataflow job speak exactly the pipeline's CLI."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from tests.infra import tf

GCP_MODULE = tf.INFRA / "gcp/modules/region"
METADATA = tf.REPO / "runners/dataflow/metadata.json"
DOCKERFILE = tf.REPO / "runners/dataflow/Dockerfile"


# --resume continues from positions the local runner stored next to its output; Dataflow keeps
# its own checkpoints, so the template has no such parameter.
LOCAL_ONLY_OPTIONS = {"resume"}


def cli_option_names() -> set[str]:
    """Option names of `python -m pipelines.run`, read from the argparse parser itself."""
    from pipelines.options import AnalyticsOptions

    parser = argparse.ArgumentParser()
    AnalyticsOptions._add_argparse_args(parser)
    names = set()
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                names.add(option[2:])
    names.discard("help")
    assert names, "AnalyticsOptions defines no options"
    return names - LOCAL_ONLY_OPTIONS


def cli_defaults() -> dict[str, object]:
    from pipelines.options import AnalyticsOptions

    parser = argparse.ArgumentParser()
    AnalyticsOptions._add_argparse_args(parser)
    return {a.dest: a.default for a in parser._actions if a.option_strings}


def metadata() -> dict:
    return json.loads(METADATA.read_text(encoding="utf-8"))


def test_metadata_parameters_equal_cli_options():
    names = [p["name"] for p in metadata()["parameters"]]
    assert len(names) == len(set(names)), "duplicate template parameters"
    assert set(names) == cli_option_names()


def test_metadata_parameters_carry_regexes_that_accept_cli_defaults():
    defaults = cli_defaults()
    for parameter in metadata()["parameters"]:
        assert parameter.get("regexes"), f"{parameter['name']} has no regex"
        assert parameter.get("helpText") and parameter.get("label")
        patterns = [re.compile(r) for r in parameter["regexes"]]
        default = defaults.get(parameter["name"])
        if default is not None and parameter["name"] not in {"source", "output"}:
            text = str(int(default)) if isinstance(default, float) and default.is_integer() else str(default)
            assert any(p.fullmatch(text) for p in patterns), f"{parameter['name']} refuses its default {text!r}"


@pytest.mark.parametrize(
    "name,good,bad",
    [
        ("source", "pubsub://projects/my-proj-123/subscriptions/bra-europe-west1-pipeline", "pubsub://x"),
        ("output", "gs://bra-europe-west1-data-123/aggregates", "http://example.com/x"),
        ("window", "sliding:60,10", "tumbling:60"),
        ("jurisdiction", "eu", "mars"),
        ("output_format", "parquet", "csv"),
    ],
)
def test_metadata_regexes_accept_and_refuse(name, good, bad):
    parameter = next(p for p in metadata()["parameters"] if p["name"] == name)
    patterns = [re.compile(r) for r in parameter["regexes"]]
    assert any(p.fullmatch(good) for p in patterns)
    assert not any(p.fullmatch(bad) for p in patterns)


def test_required_template_parameters_are_source_and_output():
    required = {p["name"] for p in metadata()["parameters"] if not p.get("isOptional", False)}
    assert required == {"source", "output"}


def test_dataflow_job_parameters_equal_cli_options():
    local = tf.locals_(GCP_MODULE)
    derived = set(local["derived_parameters"])
    passed_through = tf.object_attributes(tf.variables(GCP_MODULE)["pipeline_options"]["type"])
    assert not derived & passed_through, f"set twice: {derived & passed_through}"
    assert derived | passed_through == cli_option_names()
    root = tf.object_attributes(tf.variables(tf.INFRA / "gcp")["pipeline_options"]["type"])
    assert root == passed_through, "root and module pipeline_options differ"
    assert "var.pipeline_options" in local["job_parameters"] and "local.derived_parameters" in local["job_parameters"]
    job = tf.resource(GCP_MODULE, "google_dataflow_flex_template_job", "analytics")
    assert job["parameters"] == "${local.job_parameters}"


def test_dataflow_job_streams_drains_autoscales_in_region():
    job = tf.resource(GCP_MODULE, "google_dataflow_flex_template_job", "analytics")
    assert job["on_delete"] == "drain"
    assert job["enable_streaming_engine"] is True
    assert job["max_workers"] == "${var.dataflow.max_workers}"
    assert job["region"] == "${var.region}"
    assert job["service_account_email"] == "${google_service_account.dataflow.email}"
    assert job["provider"] == "${google-beta}"
    spec = tf.resource(GCP_MODULE, "google_storage_bucket_object", "template_spec")
    assert "var.dataflow.metadata_path" in spec["content"]
    assert "runners/dataflow/metadata.json" in tf.module_calls(tf.INFRA / "gcp")["region"]["dataflow"]["metadata_path"]


def test_dataflow_worker_roles_are_scoped():
    project_roles = [b["role"] for _, _, b in tf.resources(GCP_MODULE, "google_project_iam_member")]
    assert project_roles == ["roles/dataflow.worker"], f"project-wide grants: {project_roles}"
    for kind, name, body in tf.resources(GCP_MODULE):
        if kind.endswith("_iam_member") and body.get("member") == "${local.worker}":
            assert not body["role"].endswith((".admin", "/owner", "/editor")), f"{kind}.{name} grants {body['role']}"


def test_beam_is_pinned_identically_in_dockerfile_and_setup():
    setup = (tf.REPO / "setup.py").read_text(encoding="utf-8")
    pinned = re.search(r'^BEAM_VERSION = "([^"]+)"', setup, re.M).group(1)
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(rf"^ARG BEAM_VERSION={re.escape(pinned)}$", dockerfile, re.M), "Dockerfile pins another Beam"
    assert "FROM apache/beam_python3.11_sdk:${BEAM_VERSION}" in dockerfile
    assert "python311-template-launcher-base" in dockerfile
    assert re.search(r"pip check", dockerfile)
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE" in dockerfile
    for var in ("aws", "azure"):
        default = tf.variables(tf.INFRA / var)["beam_version"]["default"]
        assert default == pinned, f"infra/{var} installs Beam {default}, setup.py pins {pinned}"
