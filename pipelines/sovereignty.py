"""The data-sovereignty guard: refuse, before a pipeline starts, a source or sink outside
`--jurisdiction`.

`infra/regions.json` (shared with Terraform, read by runners.regions, the one reader the
runner profiles use too) says which regions of each cloud belong to which jurisdiction,
and which GCS multi-/dual-regions lie inside each.

Where each resource is:

- synthetic://, file:// (local): runs where the job runs, not checked.
- kinesis://STREAM?region=R (aws): `?region=`, else `--source_region`, else boto3's region.
- eventhubs://NAMESPACE/HUB (azure): `--source_region` (or `?region=`); a namespace's region
  is only known to Azure Resource Manager. When regions.json gives that region an Event Hubs
  geo-DR pair, the pair counts too: after a failover the alias serves the hub from there.
- pubsub://projects/P/subscriptions/S (gcp): `--source_region`, else the topic's message
  storage policy; every allowed persistence region must be inside j, and a topic without a
  policy (Pub/Sub may then store messages anywhere) is refused.
- s3://bucket/... (aws): S3 GetBucketLocation; `--sink_region` only when the look-up is denied.
- gs://bucket/... (gcp): the bucket's location (multi-/dual-regions EU, EUR4, US, NAM4, ASIA
  ... count for the jurisdiction regions.json puts them in); `--sink_region` only when the
  look-up is denied.
- azfs://account/container/... (azure): `--sink_region`; a storage account's region is only
  known to Azure Resource Manager, not to the blob endpoint.

A looked-up location always wins: a `--sink_region` that disagrees with it is ignored with a
warning (runner profiles pass their deployment region as --sink_region; the bucket's real
location is what sovereignty is about).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from runners.regions import REGIONS_ENV, Regions, load_regions, regions_path

LOG = logging.getLogger(__name__)


class SovereigntyError(ValueError):
    """A source or sink outside the jurisdiction, or whose location cannot be established."""


def _load_regions() -> Regions:
    path = regions_path()
    try:
        regions = load_regions(path)
    except OSError as err:
        raise SovereigntyError(
            f"--jurisdiction needs {path} (the regions of each jurisdiction): {err.strerror}; "
            f"run from the repository or set {REGIONS_ENV}."
        ) from None
    problems = regions.problems()
    if problems:
        # A file that contradicts itself cannot say where data may go.
        raise SovereigntyError(f"--jurisdiction refuses to run on {path}: {'; '.join(problems)}.")
    return regions


@dataclass(frozen=True)
class Placement:
    """Where one resource is: `regions` (several for a Pub/Sub storage policy) and how we know."""

    role: str  # "source", "sink" or "dead-letter sink"
    uri: str
    cloud: str | None  # None: local, runs where the job runs
    regions: tuple[str, ...] = ()
    how: str = ""
    resource: str = ""  # "S3 bucket 'b'", ...


# --- looking locations up -------------------------------------------------------------------


class LookupDenied(Exception):
    """The store answered but does not let us read the location (fall back to an explicit region)."""


class LookupFailed(Exception):
    """The resource does not exist or the store cannot be reached."""


def s3_bucket_region(bucket: str, options: PipelineOptions) -> str:
    """S3 GetBucketLocation, with Beam's S3 options (endpoint, keys) or boto3's environment."""
    from botocore.exceptions import BotoCoreError, ClientError

    from transforms.store_clients import s3_client

    client = s3_client(options, connect_timeout=5, read_timeout=15, retries={"max_attempts": 3})
    try:
        answer = client.get_bucket_location(Bucket=bucket)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            raise LookupDenied(f"S3 GetBucketLocation was denied ({code})") from None
        raise LookupFailed(f"S3 GetBucketLocation failed: {code or err}") from None
    except BotoCoreError as err:
        raise LookupFailed(f"S3 could not be reached: {err}") from None
    constraint = answer.get("LocationConstraint")
    # No constraint means us-east-1; "EU" is the legacy name of eu-west-1.
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)


def gcs_bucket_location(bucket: str, options: PipelineOptions) -> str:
    """The GCS bucket's location (e.g. EUROPE-WEST1, EU, NAM4) via google-cloud-storage."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions
    from google.api_core import exceptions as gexc
    from google.cloud import storage

    from transforms.store_clients import gcs_storage_client

    # The sink's own client (anonymous, bound to an emulator) when there is one, else the default.
    client = gcs_storage_client(options) or storage.Client(project=options.view_as(GoogleCloudOptions).project)
    try:
        found = client.get_bucket(bucket, timeout=15)
    except gexc.Forbidden as err:
        raise LookupDenied(f"reading the GCS bucket's metadata was denied ({err.code})") from None
    except gexc.NotFound:
        raise LookupFailed("the GCS bucket does not exist") from None
    except gexc.GoogleAPIError as err:
        raise LookupFailed(f"GCS failed: {err}") from None
    return found.location


def pubsub_storage_regions(subscription: str) -> tuple[str, ...]:
    """The allowed persistence regions of the subscription's topic (empty: no policy)."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    try:
        topic = pubsub_v1.SubscriberClient().get_subscription(subscription=subscription, timeout=15).topic
        policy = pubsub_v1.PublisherClient().get_topic(topic=topic, timeout=15).message_storage_policy
    except gexc.PermissionDenied as err:
        raise LookupDenied(f"reading the topic's message storage policy was denied ({err.code})") from None
    except gexc.GoogleAPIError as err:
        raise LookupFailed(f"Pub/Sub failed: {err}") from None
    return tuple(policy.allowed_persistence_regions)


@dataclass(frozen=True)
class Lookups:
    """The look-up functions (tests swap in fakes)."""

    s3_bucket_region: Callable[[str, PipelineOptions], str] = s3_bucket_region
    gcs_bucket_location: Callable[[str, PipelineOptions], str] = gcs_bucket_location
    pubsub_storage_regions: Callable[[str], tuple[str, ...]] = pubsub_storage_regions


# --- placing sources and sinks --------------------------------------------------------------


def _default_aws_region() -> str | None:
    try:
        import boto3
    except ModuleNotFoundError:
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return boto3.session.Session().region_name


def place_source(
    scheme: str,
    location: str,
    params: Mapping[str, str],
    uri: str,
    source_region: str | None,
    lookups: Lookups,
    regions: Regions,
) -> Placement:
    if scheme == "kinesis":
        stream = f"Kinesis stream {location!r}"
        if params.get("region"):
            return Placement("source", uri, "aws", (params["region"],), "?region= in the URI", stream)
        if source_region:
            return Placement("source", uri, "aws", (source_region,), "--source_region", stream)
        region = _default_aws_region()
        if not region:
            raise SovereigntyError(
                f"--jurisdiction cannot tell where the source {uri} is: its URI names no region and no "
                "AWS region is configured; add ?region=R to the URI."
            )
        return Placement("source", uri, "aws", (region,), "the AWS SDK's configured region", stream)
    if scheme == "eventhubs":
        namespace = location.split("/", 1)[0]
        region = params.get("region") or source_region
        if not region:
            raise SovereigntyError(
                f"--jurisdiction cannot tell where the source {uri} is: an Event Hubs namespace's region is "
                f"only known to Azure Resource Manager; pass --source_region (the region of namespace {namespace!r})."
            )
        how = "?region= in the URI" if params.get("region") else "--source_region"
        pair = regions.geo_dr_pair(region)
        if pair:
            return Placement(
                "source", uri, "azure", (region, pair), f"{how} and its geo-DR pair in regions.json",
                f"Event Hubs namespace {namespace!r}",
            )  # fmt: skip
        return Placement("source", uri, "azure", (region,), how, f"Event Hubs namespace {namespace!r}")
    if scheme == "pubsub":
        if source_region:
            return Placement("source", uri, "gcp", (source_region,), "--source_region", f"Pub/Sub {location!r}")
        try:
            regions = lookups.pubsub_storage_regions(location)
        except (LookupDenied, LookupFailed) as err:
            raise SovereigntyError(
                f"--jurisdiction cannot tell where the source {uri} keeps its messages: {err}; "
                "give the topic a message storage policy, or pass --source_region."
            ) from None
        if not regions:
            raise SovereigntyError(
                f"--jurisdiction refuses the source {uri}: its topic has no message storage policy, so "
                "Pub/Sub may store its messages in any region; set one with gcloud pubsub topics update "
                "TOPIC --message-storage-policy-allowed-regions=... (or pass --source_region)."
            )
        return Placement(
            "source", uri, "gcp", tuple(regions), "the topic's message storage policy", f"Pub/Sub {location!r}"
        )
    return Placement("source", uri, None)


def _bucket_of(path: str) -> tuple[str, str]:
    scheme, _, rest = path.partition("://")
    return scheme.lower(), rest.split("/", 1)[0]


def place_sink(role: str, path: str, sink_region: str | None, options: PipelineOptions, lookups: Lookups) -> Placement:
    scheme, bucket = _bucket_of(path) if "://" in path else ("file", "")
    if scheme == "azfs":
        account, _, rest = path.partition("://")[2].partition("/")
        container = rest.split("/", 1)[0]
        if not sink_region:
            raise SovereigntyError(
                f"--jurisdiction cannot tell where the {role} {path} is: a storage account's region is only "
                f"known to Azure Resource Manager, not to the blob endpoint; pass --sink_region (the region of "
                f"storage account {account!r})."
            )
        return Placement(
            role,
            path,
            "azure",
            (sink_region,),
            "--sink_region",
            f"Azure storage account {account!r} (container {container!r})",
        )
    if scheme not in ("s3", "gs"):
        return Placement(role, path, None)
    cloud, kind, lookup, how = (
        ("aws", "S3 bucket", lookups.s3_bucket_region, "S3 GetBucketLocation")
        if scheme == "s3"
        else ("gcp", "GCS bucket", lookups.gcs_bucket_location, "the GCS bucket's location")
    )
    resource = f"{kind} {bucket!r}"
    try:
        region = lookup(bucket, options)
    except LookupDenied as err:
        if not sink_region:
            raise SovereigntyError(
                f"--jurisdiction cannot tell where the {role} {path} is: {err}; allow the look-up or pass "
                "--sink_region."
            ) from None
        return Placement(role, path, cloud, (sink_region,), f"--sink_region ({err})", resource)
    except LookupFailed as err:
        raise SovereigntyError(f"--jurisdiction cannot tell where the {role} {path} is: {err}.") from None
    if sink_region and sink_region.lower() != region.lower():
        LOG.warning(
            "--sink_region %s disagrees with the %s %s: %s is in %s (%s); the guard uses %s.",
            sink_region, role, path, resource, region, how, region,
        )  # fmt: skip
    return Placement(role, path, cloud, (region,), how, resource)


# --- the guard ------------------------------------------------------------------------------


def _refusal(jurisdiction: str, placement: Placement, outside: Sequence[str], regions: Regions) -> str:
    cloud = placement.cloud or ""
    where = ", ".join(placement.regions)
    allowed = ", ".join(regions.allowed_in(jurisdiction, cloud)) or "none"
    elsewhere = sorted({j for r in outside if (j := regions.jurisdiction_of(cloud, r))})
    note = f" ({' / '.join(elsewhere)} jurisdiction)" if elsewhere else ""
    extra = ""
    if cloud == "gcp":
        multi = sorted(regions.multi_regions_in(jurisdiction))
        extra = f" (or the multi-/dual-regions {', '.join(multi)})" if multi else ""
    return (
        f"--jurisdiction {jurisdiction} refuses the {placement.role} {placement.uri}: "
        f"{placement.resource or 'it'} is in {where}{note}, from {placement.how}; "
        f"{jurisdiction} ({regions.name_of(jurisdiction)}) allows {cloud} regions {allowed}{extra}."
    )


def check_placements(jurisdiction: str, placements: Sequence[Placement], regions: Regions) -> None:
    """Raises SovereigntyError for the first placement outside the jurisdiction."""
    for placement in placements:
        if placement.cloud is None:
            continue
        outside = [r for r in placement.regions if not regions.allows(jurisdiction, placement.cloud, r)]
        if outside or not placement.regions:
            raise SovereigntyError(_refusal(jurisdiction, placement, outside, regions))


def enforce_jurisdiction(
    jurisdiction: str | None,
    source: Any,  # io_connectors.uri.SourceSpec
    sinks: Sequence[tuple[str, str]],  # (role, path)
    options: PipelineOptions,
    *,
    sink_region: str | None = None,
    source_region: str | None = None,
    regions: Regions | None = None,
    lookups: Lookups | None = None,
) -> list[Placement]:
    """The guard: with a jurisdiction, place the source and each sink and refuse any outside it.

    Returns the placements (for logging); raises SovereigntyError with one clear sentence."""
    if not jurisdiction:
        return []
    regions = regions or _load_regions()
    if jurisdiction not in regions.allowed:
        raise SovereigntyError(
            f"--jurisdiction {jurisdiction!r} is not in infra/regions.json; use one of "
            f"{', '.join(regions.jurisdictions())}."
        )
    lookups = lookups or Lookups()
    uri = source.uri or source.location
    placements = [place_source(source.scheme, source.location, source.params, uri, source_region, lookups, regions)]
    seen: set[str] = set()
    for role, path in sinks:
        if path in seen:
            continue
        seen.add(path)
        placements.append(place_sink(role, path, sink_region, options, lookups))
    check_placements(jurisdiction, placements, regions)
    return placements
