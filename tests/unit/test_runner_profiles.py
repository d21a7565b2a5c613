"""Runner profiles build the expected options from Terraform outputs and explain mistakes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import (
    DirectOptions,
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    SparkRunnerOptions,
    StandardOptions,
    WorkerOptions,
)

import runners
from runners import ProfileError, dataflow, direct, flink, spark
from runners.__main__ import main as runners_main
from runners._common import pipeline_option
from runners.flink import FlinkCheckpointOptions

GCP_PROFILE = {
    "cloud": "gcp",
    "project": "my-analytics-123",
    "region": "europe-west1",
    "jurisdiction": "eu",
    "source": "pubsub://projects/my-analytics-123/subscriptions/bra-europe-west1-pipeline",
    "output": "gs://bra-europe-west1-data-42/aggregates",
    "dead_letter": "gs://bra-europe-west1-data-42/dead-letters",
    "temp_location": "gs://bra-europe-west1-data-42/dataflow/temp",
    "staging_location": "gs://bra-europe-west1-data-42/dataflow/staging",
    "service_account_email": "bra-df-europe-west1@my-analytics-123.iam.gserviceaccount.com",
    "sdk_container_image": (
        "europe-west1-docker.pkg.dev/my-analytics-123/bra-europe-west1-images/analytics:2.77.0-0.1.0"
    ),
    "subnetwork": "https://www.googleapis.com/compute/v1/projects/my-analytics-123/regions/europe-west1/subnetworks/x",
    "max_num_workers": 12,
    "machine_type": "n2-standard-2",
    "network_tag": "dataflow-bra-europe-west1",
}

AWS_PROFILE = {
    "cloud": "aws",
    "region": "eu-west-1",
    "jurisdiction": "eu",
    "source": "kinesis://bra-eu-west-1-events?region=eu-west-1",
    "output": "s3://bra-eu-west-1-data-123456789012/aggregates",
    "dead_letter": "s3://bra-eu-west-1-data-123456789012/dead-letters",
    "flink_version": "1.19",
    "flink_master_object": "s3://bra-eu-west-1-data-123456789012/emr/flink-master.txt",
    "environment_type": "EXTERNAL",
    "environment_config": "localhost:50000",
    "checkpointing_ms": 60000,
}

AZURE_PROFILE = {
    "cloud": "azure",
    "region": "westeurope",
    "jurisdiction": "eu",
    "source": "eventhubs://bra-westeurope-ehns/events?consumer_group=beam-analytics",
    "output": "azfs://braab12cdst/aggregates/aggregates",
    "dead_letter": "azfs://braab12cdst/aggregates/dead-letters",
    "flink_version": "1.19",
    "spark_master_url": "yarn",
    "environment_type": "EXTERNAL",
    "environment_config": "localhost:50000",
    "checkpointing_ms": 30000,
}
EMR_MASTER = "http://localhost:20888/proxy/application_1700000000000_0001"


# --- lookup ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,module",
    [("DirectRunner", direct), (None, direct), ("dataflow", dataflow), ("FlinkRunner", flink), ("SparkRunner", spark)],
)
def test_profile_for_finds_each_runner(name, module):
    assert runners.profile_for(name) is module
    assert module.RUNNER.lower().startswith(runners._key(name))


def test_profile_for_unknown_runner_names_the_choices():
    with pytest.raises(ProfileError, match=r"--runner=SamzaRunner has no profile.*DataflowRunner"):
        runners.profile_for("SamzaRunner")


# --- Dataflow -------------------------------------------------------------------------


def test_dataflow_builds_options_from_terraform_outputs():
    options = dataflow.build_options(GCP_PROFILE)
    gcp = options.view_as(GoogleCloudOptions)
    worker = options.view_as(WorkerOptions)
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert (gcp.project, gcp.region) == ("my-analytics-123", "europe-west1")
    assert gcp.temp_location == GCP_PROFILE["temp_location"]
    assert gcp.staging_location == GCP_PROFILE["staging_location"]
    assert gcp.service_account_email == GCP_PROFILE["service_account_email"]
    assert worker.sdk_container_image == GCP_PROFILE["sdk_container_image"]
    assert worker.max_num_workers == 12
    assert worker.autoscaling_algorithm == "THROUGHPUT_BASED"
    assert worker.use_public_ips is False
    # Pub/Sub is unbounded: streaming with Streaming Engine.
    assert options.view_as(StandardOptions).streaming is True
    assert gcp.enable_streaming_engine is True
    assert pipeline_option(options, "sink_region") == "europe-west1"
    assert pipeline_option(options, "jurisdiction") == "eu"


def test_dataflow_fills_staging_and_worker_cap():
    profile = {k: v for k, v in GCP_PROFILE.items() if k not in ("staging_location", "max_num_workers")}
    options = dataflow.build_options(profile, max_records=1000)
    assert options.view_as(GoogleCloudOptions).staging_location == GCP_PROFILE["temp_location"] + "/staging"
    assert options.view_as(WorkerOptions).max_num_workers == dataflow.DEFAULT_MAX_WORKERS
    # A bounded read stays batch.
    assert not options.view_as(StandardOptions).streaming


@pytest.mark.parametrize(
    "missing,message",
    [
        ("project", r"--project is missing"),
        ("region", r"--region is missing"),
        ("temp_location", r"--temp_location is missing: pass a gs:// path"),
        ("service_account_email", r"--service_account_email is missing: .*least-privilege"),
        ("sdk_container_image", r"--sdk_container_image is missing: .*make flex-template"),
    ],
)
def test_dataflow_rejects_missing_options_in_one_sentence(missing, message):
    profile = {k: v for k, v in GCP_PROFILE.items() if k != missing}
    with pytest.raises(ProfileError, match=message) as error:
        dataflow.build_options(profile)
    assert str(error.value).count(". ") <= 1


@pytest.mark.parametrize(
    "override,message",
    [
        ({"temp_location": "s3://bucket/tmp"}, r"--temp_location=s3://bucket/tmp is malformed"),
        ({"region": "europe-west"}, r"--region=europe-west is malformed"),
        ({"region": "us-central1"}, r"--region=us-central1 puts the workers outside jurisdiction eu"),
        ({"max_num_workers": 0}, r"--max_num_workers=0 must be at least 1"),
        ({"service_account_email": "123-compute@developer.gserviceaccount.com"}, r"service_account_email=.* malformed"),
    ],
)
def test_dataflow_rejects_wrong_options(override, message):
    with pytest.raises(ProfileError, match=message):
        dataflow.build_options(GCP_PROFILE, **override)


# --- Flink ----------------------------------------------------------------------------


def test_flink_builds_emr_options_once_the_master_is_known():
    options = flink.build_options(AWS_PROFILE, flink_master=EMR_MASTER)
    f = options.view_as(FlinkRunnerOptions)
    portable = options.view_as(PortableOptions)
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    assert (f.flink_master, f.flink_version) == (EMR_MASTER, "1.19")
    assert f.flink_submit_uber_jar is True
    assert (portable.environment_type, portable.environment_config) == ("EXTERNAL", "localhost:50000")
    assert options.view_as(StandardOptions).streaming is True
    assert options.view_as(FlinkCheckpointOptions).checkpointing_interval == 60000
    assert pipeline_option(options, "source") == AWS_PROFILE["source"]


def test_flink_builds_hdinsight_options():
    master = "http://localhost:8088/proxy/application_1_0002"
    options = flink.build_options(AZURE_PROFILE, args=[f"--flink_master={master}"])
    assert options.view_as(FlinkRunnerOptions).flink_master == master
    assert options.view_as(FlinkCheckpointOptions).checkpointing_interval == 30000


def test_flink_missing_master_points_at_the_published_address():
    expected = r"--flink_master is missing: read it with `aws s3 cp s3://.*flink-master.txt -`"
    with pytest.raises(ProfileError, match=expected):
        flink.build_options(AWS_PROFILE)


def test_flink_requires_an_explicit_version():
    profile = {k: v for k, v in AWS_PROFILE.items() if k != "flink_version"}
    with pytest.raises(ProfileError, match=r"--flink_version is missing: Beam would default to .*1\.19"):
        flink.build_options(profile, flink_master=EMR_MASTER)


@pytest.mark.parametrize(
    "override,message",
    [
        ({"flink_master": "not a url"}, r"--flink_master=not a url is malformed"),
        ({"environment_type": "SSH"}, r"--environment_type=SSH is unknown"),
        ({"environment_config": "localhost"}, r"--environment_config=localhost must be the worker pool's host:port"),
        ({"environment_type": "LOOPBACK"}, r"LOOPBACK only works with --flink_master=\[local\]"),
        ({"checkpointing_interval": 10}, r"--checkpointing_interval=10 must be 1000-3600000 ms"),
    ],
)
def test_flink_rejects_wrong_options(override, message):
    with pytest.raises(ProfileError, match=message):
        flink.build_options(AWS_PROFILE, **{"flink_master": EMR_MASTER, **override})


def test_flink_rejects_a_version_beam_cannot_submit():
    with pytest.raises(SystemExit):
        # argparse itself refuses versions outside FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS.
        flink.build_options(AWS_PROFILE, flink_master=EMR_MASTER, flink_version="1.16")
    assert "1.19" in flink.SUPPORTED_FLINK_VERSIONS


def test_flink_local_mini_cluster_allows_loopback():
    options = flink.build_options(
        {}, flink_master="[local]", flink_version="1.19", environment_type="LOOPBACK", source="synthetic://"
    )
    assert options.view_as(FlinkRunnerOptions).flink_submit_uber_jar is False
    assert options.view_as(FlinkCheckpointOptions).checkpointing_interval is None


def test_missing_environment_type_is_explained():
    profile = {k: v for k, v in AWS_PROFILE.items() if k != "environment_type"}
    with pytest.raises(ProfileError, match=r"--environment_type is missing: pass --environment_type=EXTERNAL"):
        flink.build_options(profile, flink_master=EMR_MASTER)


# --- Spark ----------------------------------------------------------------------------


def test_spark_builds_a_bounded_backfill_on_yarn():
    options = spark.build_options(AZURE_PROFILE, source="file:///data/2026-11-*.jsonl")
    s = options.view_as(SparkRunnerOptions)
    assert options.view_as(StandardOptions).runner == "SparkRunner"
    assert s.spark_master_url == "yarn"
    assert options.view_as(PortableOptions).environment_type == "EXTERNAL"
    assert not options.view_as(StandardOptions).streaming


def test_spark_refuses_streaming_and_names_the_alternatives():
    with pytest.raises(ProfileError, match=r"--max_records or --max_read_time.*--runner=FlinkRunner"):
        spark.build_options(AZURE_PROFILE, source=AZURE_PROFILE["source"])
    bounded = spark.build_options(AZURE_PROFILE, source=AZURE_PROFILE["source"], max_read_time=600)
    # A string where the pipeline's options are not registered (runners never import them).
    assert float(pipeline_option(bounded, "max_read_time")) == 600


def test_spark_requires_an_explicit_master():
    profile = {k: v for k, v in AZURE_PROFILE.items() if k != "spark_master_url"}
    with pytest.raises(ProfileError, match=r"--spark_master_url is missing: use --spark_master_url=yarn"):
        spark.build_options(profile, source="synthetic://")


@pytest.mark.parametrize(
    "override,message",
    [
        ({"spark_master_url": "mesos://x:5050"}, r"--spark_master_url=mesos://x:5050 is malformed"),
        ({"spark_submit_uber_jar": True}, r"--spark_rest_url is missing"),
        ({"environment_config": "nowhere"}, r"--environment_config=nowhere must be the worker pool's host:port"),
    ],
)
def test_spark_rejects_wrong_options(override, message):
    with pytest.raises(ProfileError, match=message):
        spark.build_options(AZURE_PROFILE, source="synthetic://", **override)


# --- Direct ---------------------------------------------------------------------------


def test_direct_defaults_and_refuses_multi_threading():
    options = direct.build_options()
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert options.view_as(DirectOptions).direct_running_mode == "in_memory"
    expected = r"--direct_running_mode=multi_threading .*use in_memory or multi_processing"
    with pytest.raises(ProfileError, match=expected):
        direct.build_options(direct_running_mode="multi_threading")
    options = direct.build_options(GCP_PROFILE, direct_running_mode="multi_processing", direct_num_workers=2)
    assert pipeline_option(options, "output") == GCP_PROFILE["output"]


def test_apply_profile_dispatches_on_the_runner_option():
    options = PipelineOptions(["--runner=SparkRunner", "--spark_master_url=local[2]", "--environment_type=LOOPBACK"])
    runners.apply_profile(options)
    with pytest.raises(ProfileError, match="spark_master_url"):
        runners.apply_profile(PipelineOptions(["--runner=SparkRunner", "--environment_type=LOOPBACK"]))


# --- python -m runners ----------------------------------------------------------------


def test_cli_prints_flags_from_terraform_output_json(tmp_path):
    document = {"runner_profiles": {"sensitive": False, "type": ["map", "any"], "value": {"europe-west1": GCP_PROFILE}}}
    path = tmp_path / "out.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert runners_main(["--runner", "DataflowRunner", "--region", "europe-west1", "--tf-output", str(path)]) == 0
    printed = buffer.getvalue()
    assert "--runner=DataflowRunner" in printed and "--temp_location=gs://" in printed
    assert runners_main(["--runner", "DataflowRunner", "--region", "us-central1", "--tf-output", str(path)]) == 2


# --- runners stand apart from the pipeline --------------------------------------------

REPO = Path(__file__).resolve().parents[2]

# Profiles read the pipeline's options (--source, --max_read_time, --jurisdiction) whether or not
# the pipeline's option classes are registered: a fresh interpreter shows what a runner alone sees.
PROFILE_CHECKS = """
import json, sys
{register}
from runners import ProfileError, dataflow, spark
gcp, azure = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert dataflow.build_options(gcp).view_as(dataflow.StandardOptions).streaming is True
assert not dataflow.build_options(gcp, max_records=1000).view_as(dataflow.StandardOptions).streaming
spark.build_options(azure, source=azure["source"], max_read_time=600)
refusals = [
    (lambda: spark.build_options(azure, source=azure["source"]), "bound the read with --max_records"),
    (lambda: dataflow.build_options(gcp, jurisdiction="us"), "puts the workers outside jurisdiction us"),
]
for build, expected in refusals:
    try:
        build()
    except ProfileError as err:
        assert expected in str(err), err
    else:
        raise AssertionError(f"not refused: {{expected}}")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "pipelines")))
"""


@pytest.mark.parametrize("registered", [False, True], ids=["runners-alone", "with-the-cli-options"])
def test_profiles_read_the_pipeline_options_without_importing_them(registered):
    script = PROFILE_CHECKS.format(register="import pipelines.options" if registered else "")
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(GCP_PROFILE), json.dumps(AZURE_PROFILE)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    # Importing every profile loads nothing of the pipeline.
    assert json.loads(done.stdout) == (["pipelines", "pipelines.options"] if registered else [])
