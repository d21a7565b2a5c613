"""One reader of infra/regions.json (runners.regions): the runner profiles' worker-region check and
the sovereignty guard answer alike, whatever the case of a region's name, and both know the GCS
multi-/dual-regions that regions.json lists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.uri import parse_source
from pipelines.sovereignty import Lookups, SovereigntyError, enforce_jurisdiction
from runners import ProfileError
from runners._common import check_region_in_jurisdiction
from runners.regions import REGIONS_ENV, REGIONS_FILE, load_regions

LOCAL = parse_source("synthetic://?events=1")


def profile_allows(jurisdiction: str, cloud: str, region: str) -> bool:
    try:
        check_region_in_jurisdiction(PipelineOptions([f"--jurisdiction={jurisdiction}"]), cloud, region, "region")
    except ProfileError as err:
        if "puts the workers outside jurisdiction" not in str(err):
            raise
        return False
    return True


def guard_allows(jurisdiction: str, cloud: str, region: str) -> bool:
    """The guard on a bucket of `cloud` whose look-up answers `region`."""
    path = {"aws": "s3://bucket/x", "gcp": "gs://bucket/x", "azure": "azfs://account/container/x"}[cloud]
    lookups = Lookups(s3_bucket_region=lambda _b, _o: region, gcs_bucket_location=lambda _b, _o: region)
    try:
        enforce_jurisdiction(
            jurisdiction, LOCAL, [("sink", path)], PipelineOptions([]), sink_region=region, lookups=lookups
        )
    except SovereigntyError as err:
        if "refuses the sink" not in str(err):
            raise
        return False
    return True


CASES = [
    # (jurisdiction, cloud, region, inside)
    ("eu", "aws", "eu-west-1", True),
    ("eu", "aws", "EU-West-1", True),  # the profiles compared case-sensitively
    ("eu", "azure", "WestEurope", True),
    ("eu", "gcp", "EUROPE-WEST1", True),  # how GCS reports a bucket's region
    ("eu", "gcp", "EUR4", True),  # the profiles knew no GCS dual-region
    ("eu", "gcp", "eu", True),
    ("us", "gcp", "NAM4", True),
    ("jp", "gcp", "ASIA1", True),  # Tokyo and Osaka
    ("sg", "gcp", "ASIA", False),  # a multi-region across several Asian countries
    ("sg", "azure", "eastasia", False),  # Hong Kong is not Singapore
    ("eu", "aws", "eu-west-2", False),  # London is not in the EU
    ("uk", "gcp", "europe-west2", True),
    ("eu", "gcp", "EUR5", False),  # a dual-region with London
    ("eu", "gcp", "US", False),
    ("eu", "gcp", "NAM4", False),
    ("eu", "aws", "EU", False),  # a GCS multi-region, not an AWS region
    ("us", "aws", "EU-WEST-1", False),
    ("eu", "azure", "eastus", False),
]


@pytest.mark.parametrize("jurisdiction,cloud,region,inside", CASES)
def test_profiles_and_guard_agree(jurisdiction: str, cloud: str, region: str, inside: bool) -> None:
    assert load_regions().allows(jurisdiction, cloud, region) is inside
    assert profile_allows(jurisdiction, cloud, region) is inside
    assert guard_allows(jurisdiction, cloud, region) is inside


def test_the_gcs_multi_regions_come_from_regions_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(REGIONS_FILE.read_text(encoding="utf-8"))
    data["gcs_multi_regions"]["eu"] = ["EUR4"]  # EU itself no longer listed
    data["gcs_multi_regions"]["us"].append("EUR9")
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setenv(REGIONS_ENV, str(path))
    for check in (profile_allows, guard_allows):
        assert check("eu", "gcp", "eur4")
        assert not check("eu", "gcp", "EU")
        assert check("us", "gcp", "EUR9")
    with pytest.raises(SovereigntyError, match=r"\(or the multi-/dual-regions EUR4\)"):
        enforce_jurisdiction(
            "eu", LOCAL, [("sink", "gs://b/x")], PipelineOptions([]),
            lookups=Lookups(gcs_bucket_location=lambda _b, _o: "US"),
        )  # fmt: skip


def test_an_edited_regions_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "regions.json"
    data = json.loads(REGIONS_FILE.read_text(encoding="utf-8"))
    path.write_text(json.dumps(data), encoding="utf-8")
    assert not load_regions(path).allows("eu", "aws", "us-east-1")
    data["allowed_regions"]["eu"]["aws"].append("us-east-1")
    path.write_text(json.dumps(data), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a different modification time even on a coarse clock
    assert load_regions(path).allows("eu", "aws", "us-east-1")


def test_a_missing_regions_file_is_refused_by_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REGIONS_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(ProfileError, match=rf"--jurisdiction=eu needs infra/regions.json .*set {REGIONS_ENV}"):
        profile_allows("eu", "aws", "eu-west-1")
    with pytest.raises(SovereigntyError, match=rf"--jurisdiction needs .*missing.json.*set {REGIONS_ENV}"):
        guard_allows("eu", "aws", "eu-west-1")
