"""The sovereignty guard with fake location look-ups (the over-the-wire ones are in
tests/integration/test_sinks_sovereignty.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.uri import parse_source
from pipelines.config import ConfigError, build_config
from pipelines.run import parse_options
from pipelines.sovereignty import LookupDenied, LookupFailed, Lookups, SovereigntyError, enforce_jurisdiction
from runners.regions import REGIONS_ENV, REGIONS_FILE, load_regions

REGIONS = load_regions()
LOCAL = parse_source("synthetic://?events=10")


def fake_lookups(s3: dict | None = None, gcs: dict | None = None, pubsub: dict | None = None) -> Lookups:
    calls: list[str] = []

    def answer(table: dict | None, name: str) -> object:
        calls.append(name)
        value = (table or {})[name]
        if isinstance(value, Exception):
            raise value
        return value

    lookups = Lookups(
        s3_bucket_region=lambda bucket, _opts: answer(s3, bucket),
        gcs_bucket_location=lambda bucket, _opts: answer(gcs, bucket),
        pubsub_storage_regions=lambda sub: answer(pubsub, sub),
    )
    object.__setattr__(lookups, "calls", calls)
    return lookups


def guard(jurisdiction, output, source=LOCAL, lookups=None, **kwargs):  # noqa: ANN001, ANN201
    return enforce_jurisdiction(
        jurisdiction,
        source,
        [("sink", output)],
        PipelineOptions([]),
        regions=REGIONS,
        lookups=lookups or fake_lookups(),
        **kwargs,
    )


def test_regions_file_is_consistent() -> None:
    data = json.loads(REGIONS_FILE.read_text())
    assert set(data["jurisdictions"]) == set(data["allowed_regions"]) == {"us", "eu", "uk", "sg", "jp", "au"}
    assert REGIONS.problems() == []
    for jurisdiction, clouds in data["jurisdictions"].items():
        for cloud in ("aws", "azure", "gcp"):
            # Every deployed region lies inside its own jurisdiction and no other.
            for region in clouds[cloud]:
                assert REGIONS.jurisdiction_of(cloud, region) == jurisdiction
    every = [(c, r) for j in data["allowed_regions"].values() for c, rs in j.items() for r in rs]
    assert len(every) == len(set(every)), "a region is listed in two jurisdictions"


def test_eu_job_with_us_east_1_bucket_is_refused() -> None:
    with pytest.raises(SovereigntyError) as err:
        guard("eu", "s3://logs-us/agg", lookups=fake_lookups(s3={"logs-us": "us-east-1"}))
    assert str(err.value) == (
        "--jurisdiction eu refuses the sink s3://logs-us/agg: S3 bucket 'logs-us' is in us-east-1 "
        "(us jurisdiction), from S3 GetBucketLocation; eu (European Union and EEA) allows aws regions eu-west-1, "
        "eu-west-3, eu-central-1, eu-north-1, eu-south-1, eu-south-2."
    )


def test_allowed_combination_passes_and_says_where_everything_is() -> None:
    source = parse_source("kinesis://events?region=eu-central-1")
    placements = guard("eu", "s3://logs-eu/agg", source, fake_lookups(s3={"logs-eu": "eu-west-1"}))
    assert [(p.role, p.cloud, p.regions, p.how) for p in placements] == [
        ("source", "aws", ("eu-central-1",), "?region= in the URI"),
        ("sink", "aws", ("eu-west-1",), "S3 GetBucketLocation"),
    ]


def test_without_jurisdiction_nothing_is_looked_up() -> None:
    lookups = fake_lookups()
    assert guard(None, "s3://anything/x", lookups=lookups) == []
    assert lookups.calls == []


def test_unknown_jurisdiction() -> None:
    with pytest.raises(
        SovereigntyError, match=r"--jurisdiction 'mars' is not in infra/regions.json; use one of au, eu, jp, sg, uk, us"
    ):
        guard("mars", "/tmp/out")


def test_local_source_and_sink_are_not_checked(tmp_path: Path) -> None:
    placements = guard("sg", str(tmp_path), parse_source(f"file://{tmp_path}/*.jsonl"))
    assert [p.cloud for p in placements] == [None, None]


def test_kinesis_region_from_uri_then_option_then_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SovereigntyError) as err:
        guard("us", "/tmp/out", parse_source("kinesis://s?region=eu-west-1"))
    assert str(err.value).startswith(
        "--jurisdiction us refuses the source kinesis://s?region=eu-west-1: Kinesis stream 's' is in eu-west-1 "
        "(eu jurisdiction), from ?region= in the URI; us (United States) allows aws regions us-east-1"
    )
    assert guard("us", "/tmp/out", parse_source("kinesis://s"), source_region="us-west-2")[0].how == "--source_region"
    monkeypatch.setenv("AWS_REGION", "ap-southeast-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-1")
    placement = guard("sg", "/tmp/out", parse_source("kinesis://s"))[0]
    assert (placement.regions, placement.how) == (("ap-southeast-1",), "the AWS SDK's configured region")


def test_eventhubs_needs_source_region() -> None:
    source = parse_source("eventhubs://ns-weu/events?consumer_group=g")
    with pytest.raises(SovereigntyError, match=r"pass --source_region \(the region of namespace 'ns-weu'\)"):
        guard("eu", "/tmp/out", source)
    # The geo-DR pair regions.json gives westeurope counts too: the alias fails over to it.
    placement = guard("eu", "/tmp/out", source, source_region="westeurope")[0]
    assert (placement.regions, placement.how) == (
        ("westeurope", "northeurope"),
        "--source_region and its geo-DR pair in regions.json",
    )
    assert guard("sg", "/tmp/out", source, source_region="southeastasia")[0].regions == ("southeastasia",)
    with pytest.raises(
        SovereigntyError, match=r"is in eastus, westus2 \(us jurisdiction\), from --source_region and its geo-DR"
    ):
        guard("eu", "/tmp/out", source, source_region="eastus")


def test_pubsub_uses_the_topic_storage_policy() -> None:
    sub = "projects/p/subscriptions/s"
    source = parse_source(f"pubsub://{sub}")
    ok = fake_lookups(pubsub={sub: ("europe-west1", "europe-west4")})
    assert guard("eu", "/tmp/out", source, ok)[0].regions == ("europe-west1", "europe-west4")
    with pytest.raises(SovereigntyError, match=r"is in europe-west1, us-central1 \(us jurisdiction\)"):
        guard("eu", "/tmp/out", source, fake_lookups(pubsub={sub: ("europe-west1", "us-central1")}))
    with pytest.raises(
        SovereigntyError, match="has no message storage policy, so Pub/Sub may store its messages in any"
    ):
        guard("eu", "/tmp/out", source, fake_lookups(pubsub={sub: ()}))
    # An explicit --source_region is the operator's statement and skips the look-up.
    lookups = fake_lookups()
    assert guard("eu", "/tmp/out", source, lookups, source_region="europe-west1")[0].how == "--source_region"
    assert lookups.calls == []


def test_gcs_locations_regional_and_multi_region() -> None:
    lookups = fake_lookups(gcs={"eu-multi": "EU", "eu-dual": "EUR4", "be": "EUROPE-WEST1", "us-multi": "US"})
    for bucket in ("eu-multi", "eu-dual", "be"):
        guard("eu", f"gs://{bucket}/x", lookups=lookups)
    with pytest.raises(SovereigntyError, match=r"GCS bucket 'us-multi' is in US \(us jurisdiction\)"):
        guard("eu", "gs://us-multi/x", lookups=lookups)
    with pytest.raises(SovereigntyError, match=r"GCS bucket 'eu-multi' is in EU \(eu jurisdiction\)"):
        guard("us", "gs://eu-multi/x", lookups=lookups)


def test_sink_region_only_when_the_lookup_is_denied() -> None:
    denied = fake_lookups(s3={"b": LookupDenied("S3 GetBucketLocation was denied (AccessDenied)")})
    with pytest.raises(SovereigntyError, match=r"allow the look-up or pass --sink_region"):
        guard("eu", "s3://b/x", lookups=denied)
    assert guard("eu", "s3://b/x", lookups=denied, sink_region="eu-west-1")[1].regions == ("eu-west-1",)
    # A looked-up location wins over --sink_region (which runner profiles set to their region).
    with pytest.raises(SovereigntyError, match="S3 bucket 'b' is in us-east-1"):
        guard("eu", "s3://b/x", lookups=fake_lookups(s3={"b": "us-east-1"}), sink_region="eu-west-1")
    assert guard("us", "s3://b/x", lookups=fake_lookups(s3={"b": "us-east-1"}), sink_region="eu-west-1")
    with pytest.raises(SovereigntyError, match="cannot tell where the sink s3://b/x is: S3 GetBucketLocation failed"):
        guard(
            "eu", "s3://b/x", lookups=fake_lookups(s3={"b": LookupFailed("S3 GetBucketLocation failed: NoSuchBucket")})
        )


def test_azure_sink_needs_sink_region_of_the_right_cloud() -> None:
    with pytest.raises(SovereigntyError, match="pass --sink_region"):
        guard("eu", "azfs://acct/cont/x")
    assert guard("eu", "azfs://acct/cont/x", sink_region="westeurope")[1].cloud == "azure"
    # An AWS region name is not an Azure region of eu.
    with pytest.raises(SovereigntyError, match=r"eu \(European Union and EEA\) allows azure regions westeurope, north"):
        guard("eu", "azfs://acct/cont/x", sink_region="eu-west-1")


def test_build_config_runs_the_guard(tmp_path: Path) -> None:
    # Local paths pass; an Azure sink without --sink_region is refused before any pipeline exists.
    build_config(parse_options(["--output", str(tmp_path), "--jurisdiction", "eu"]))
    with pytest.raises(ConfigError, match="pass --sink_region"):
        build_config(parse_options(["--output", "azfs://acct/cont/x", "--jurisdiction", "eu"]))
    config = build_config(
        parse_options(["--output", "azfs://acct/cont/x", "--jurisdiction", "eu", "--sink_region", "northeurope"])
    )
    assert config.output.path == "azfs://acct/cont/x"


@pytest.mark.parametrize(
    "cloud,london", [("aws", "eu-west-2"), ("azure", "uksouth"), ("gcp", "europe-west2"), ("gcp", "EUR5")]
)
def test_london_is_not_in_the_eu(cloud: str, london: str) -> None:
    path = {"aws": "s3://b/x", "gcp": "gs://b/x", "azure": "azfs://acct/cont/x"}[cloud]
    lookups = fake_lookups(s3={"b": london}, gcs={"b": london})
    with pytest.raises(SovereigntyError, match=f"refuses the sink {path}"):
        guard("eu", path, lookups=lookups, sink_region=london)
    if london != "EUR5":  # a dual-region with London and Belgium: inside no single jurisdiction
        assert guard("uk", path, lookups=lookups, sink_region=london)[1].regions == (london,)


def test_a_singapore_job_refuses_hong_kong_and_the_asia_multi_region() -> None:
    # The old "apac" let Singapore data be paired with, replicated to or written in Hong Kong.
    with pytest.raises(SovereigntyError, match=r"is in eastasia, from --sink_region; sg \(Singapore\) allows azure"):
        guard("sg", "azfs://acct/cont/x", sink_region="eastasia")
    with pytest.raises(SovereigntyError, match=r"GCS bucket 'b' is in ASIA"):
        guard("sg", "gs://b/x", lookups=fake_lookups(gcs={"b": "ASIA"}))


def _edited_regions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Callable[[dict], None]) -> None:
    data = json.loads(REGIONS_FILE.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setenv(REGIONS_ENV, str(path))


def test_a_cross_jurisdiction_geo_dr_pair_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Singapore paired with Hong Kong, as Azure's own pairing would have it.
    _edited_regions(tmp_path, monkeypatch, lambda d: d["jurisdictions"]["sg"]["azure_geo_dr_pair"].update(
        {"southeastasia": "eastasia"}
    ))  # fmt: skip
    source = parse_source("eventhubs://ns/events")
    with pytest.raises(SovereigntyError, match=r"the geo-DR pair eastasia of southeastasia must be another azure"):
        enforce_jurisdiction("sg", source, [], PipelineOptions([]), source_region="southeastasia")
    # Given the edited file as it is, the placement itself names the pair outside Singapore.
    edited = load_regions()
    with pytest.raises(SovereigntyError, match=r"is in southeastasia, eastasia, from --source_region and its geo-DR"):
        enforce_jurisdiction("sg", source, [], PipelineOptions([]), source_region="southeastasia", regions=edited)


def test_a_region_in_two_jurisdictions_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _edited_regions(tmp_path, monkeypatch, lambda d: d["allowed_regions"]["eu"]["aws"].append("eu-west-2"))
    with pytest.raises(SovereigntyError, match=r"aws region eu-west-2 is in both eu and uk"):
        enforce_jurisdiction("eu", LOCAL, [("sink", "/tmp/out")], PipelineOptions([]))
