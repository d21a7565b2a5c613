"""DataflowRunner profile: GCP, one job per region, launched from the flex template image.

The same image (runners/dataflow/Dockerfile) is the template launcher and the SDK
container, so workers never install packages at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)

from runners._common import (
    ProfileError,
    check_pattern,
    check_region_in_jurisdiction,
    fill_streaming,
    merge_flags,
    require,
    to_flags,
)

RUNNER = "DataflowRunner"
DEFAULT_MAX_WORKERS = 10
PROJECT_RE = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
REGION_RE = r"[a-z]+-[a-z]+[0-9]"
GCS_RE = r"gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/.*)?"
SERVICE_ACCOUNT_RE = r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
IMAGE_RE = r"[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})"


def args_from_terraform(profile: Mapping[str, object]) -> list[str]:
    """Flags from one region of `terraform -chdir=infra/gcp output -json runner_profiles`."""
    return to_flags(
        {
            "runner": RUNNER,
            "project": profile.get("project"),
            "region": profile.get("region"),
            "temp_location": profile.get("temp_location"),
            "staging_location": profile.get("staging_location"),
            "service_account_email": profile.get("service_account_email"),
            "sdk_container_image": profile.get("sdk_container_image"),
            "subnetwork": profile.get("subnetwork"),
            "max_num_workers": profile.get("max_num_workers"),
            "machine_type": profile.get("machine_type"),
            "dataflow_kms_key": profile.get("dataflow_kms_key"),
            "source": profile.get("source"),
            "output": profile.get("output"),
            "dead_letter": profile.get("dead_letter"),
            "jurisdiction": profile.get("jurisdiction"),
            "sink_region": profile.get("region"),
        }
    ) + ([f"--experiments=use_network_tags={profile['network_tag']}"] if profile.get("network_tag") else [])


def apply_profile(options: PipelineOptions) -> None:
    """Fill Dataflow defaults (staging, autoscaling, Streaming Engine) and validate the rest."""
    gcp = options.view_as(GoogleCloudOptions)
    worker = options.view_as(WorkerOptions)
    setup = options.view_as(SetupOptions)

    require(gcp.project, "project", "pass the GCP project id, e.g. --project=my-analytics-prod.")
    check_pattern(gcp.project, "project", PROJECT_RE, "--project=my-analytics-prod")
    require(gcp.region, "region", "pass the region of the job's topic and bucket, e.g. --region=europe-west1.")
    check_pattern(gcp.region, "region", REGION_RE, "--region=europe-west1")
    check_region_in_jurisdiction(options, "gcp", gcp.region, "region")

    require(
        gcp.temp_location,
        "temp_location",
        "pass a gs:// path in the job's regional bucket (terraform output runner_profiles.temp_location).",
    )
    check_pattern(gcp.temp_location, "temp_location", GCS_RE, "--temp_location=gs://BUCKET/dataflow/temp")
    if not gcp.staging_location:
        gcp.staging_location = gcp.temp_location.rstrip("/") + "/staging"
    check_pattern(gcp.staging_location, "staging_location", GCS_RE, "--staging_location=gs://BUCKET/dataflow/staging")

    require(
        gcp.service_account_email,
        "service_account_email",
        "pass the least-privilege worker account (terraform output runner_profiles.service_account_email), "
        "not the default Compute Engine account.",
    )
    check_pattern(
        gcp.service_account_email,
        "service_account_email",
        SERVICE_ACCOUNT_RE,
        "--service_account_email=bra-df-europe-west1@PROJECT.iam.gserviceaccount.com",
    )

    require(
        worker.sdk_container_image,
        "sdk_container_image",
        "pass the flex template image built by `make flex-template` "
        "(terraform output runner_profiles.sdk_container_image).",
    )
    check_pattern(
        worker.sdk_container_image,
        "sdk_container_image",
        IMAGE_RE,
        "--sdk_container_image=europe-west1-docker.pkg.dev/PROJECT/REPO/analytics:TAG",
    )
    # The image already holds Beam and the pipeline package: stage nothing.
    if not setup.sdk_location or setup.sdk_location == "default":
        setup.sdk_location = "container"

    if worker.max_num_workers is None:
        worker.max_num_workers = DEFAULT_MAX_WORKERS
    if worker.max_num_workers < 1:
        raise ProfileError(f"--max_num_workers={worker.max_num_workers} must be at least 1.")
    if worker.autoscaling_algorithm is None:
        worker.autoscaling_algorithm = "THROUGHPUT_BASED"
    if worker.autoscaling_algorithm == "NONE" and not worker.num_workers:
        raise ProfileError("--autoscaling_algorithm=NONE needs a fixed --num_workers; set it or drop NONE.")
    if worker.subnetwork and worker.use_public_ips is None:
        worker.use_public_ips = False

    if fill_streaming(options):
        gcp.enable_streaming_engine = True
    options.view_as(StandardOptions).runner = RUNNER


def build_options(
    profile: Mapping[str, object], *, args: Sequence[str] = (), **overrides: object
) -> PipelineOptions:
    """DataflowRunner options for one region of the GCP Terraform outputs."""
    options = PipelineOptions(merge_flags(args_from_terraform(profile), args, overrides))
    apply_profile(options)
    return options
