"""Every region in regions.json gets its stream, bucket and runner, inside its jurisdiction."""

from __future__ import annotations

import re

import pytest

from tests.infra import tf

AWS_MODULE = tf.INFRA / "aws/modules/region"
AZURE_MODULE = tf.INFRA / "azure/modules/region"
GCP_MODULE = tf.INFRA / "gcp/modules/region"

# What "stream, bucket and runner" means per cloud.
REGION_KIT = {
    AWS_MODULE: ("aws_kinesis_stream", "aws_s3_bucket", "aws_emr_cluster"),
    AZURE_MODULE: ("azurerm_eventhub", "azurerm_storage_account", "azurerm_hdinsight_spark_cluster"),
    GCP_MODULE: ("google_pubsub_topic", "google_storage_bucket", "google_dataflow_flex_template_job"),
}


def test_regions_json_schema_and_required_regions():
    doc = tf.regions_doc()
    # Legal jurisdictions, each with its name; "apac" (Singapore with Hong Kong) is gone.
    assert set(doc["jurisdictions"]) == {"us", "eu", "uk", "sg", "jp", "au"}
    assert all(spec["name"] for spec in doc["jurisdictions"].values())
    for cloud, required in {
        "aws": {"us-east-1", "eu-west-1", "ap-southeast-1"},
        "azure": {"eastus", "westeurope", "southeastasia"},
        "gcp": {"us-central1", "europe-west1", "asia-southeast1"},
    }.items():
        assert required <= set(tf.deployed(cloud)), f"{cloud} misses {required - set(tf.deployed(cloud))}"
    assert tf.deployed("gcp")["asia-southeast1"] == tf.deployed("aws")["ap-southeast-1"] == "sg"


def test_london_and_hong_kong_are_outside_the_eu_and_singapore():
    allowed = tf.regions_doc()["allowed_regions"]
    for london in ("eu-west-2", "uksouth", "ukwest", "europe-west2"):
        assert not any(london in regions for regions in allowed["eu"].values()), f"{london} is not in the EU"
    assert "eastasia" not in allowed["sg"]["azure"]
    assert "EUR5" not in tf.regions_doc()["gcs_multi_regions"].get("eu", [])  # Belgium + London


def test_the_one_loader_finds_regions_json_consistent():
    from runners.regions import load_regions

    assert load_regions(tf.INFRA / "regions.json").problems() == []


@pytest.mark.parametrize("cloud", tf.CLOUDS)
def test_deployed_regions_lie_inside_their_jurisdiction(cloud):
    doc = tf.regions_doc()
    seen: dict[str, str] = {}
    for j, spec in doc["jurisdictions"].items():
        for region in spec[cloud]:
            assert region in doc["allowed_regions"][j][cloud], f"{cloud} {region} is not allowed in {j}"
            assert region not in seen, f"{region} is deployed by both {seen[region]} and {j}"
            seen[region] = j
    for j, allowed in doc["allowed_regions"].items():
        for other, other_allowed in doc["allowed_regions"].items():
            if j != other:
                assert not set(allowed[cloud]) & set(other_allowed[cloud]), f"{j} and {other} share {cloud} regions"


def test_azure_geo_dr_pairs_stay_inside_the_jurisdiction():
    doc = tf.regions_doc()
    for j, spec in doc["jurisdictions"].items():
        assert set(spec["azure_geo_dr_pair"]) <= set(spec["azure"]), f"{j}: a pair for a region it does not deploy"
        for primary, pair in spec["azure_geo_dr_pair"].items():
            assert pair != primary
            assert pair in doc["allowed_regions"][j]["azure"], f"{j}: geo-DR pair {pair} leaves the jurisdiction"
            assert pair in doc["azure_zonal_regions"], f"{j}: geo-DR pair {pair} has no availability zones"
    assert doc["jurisdictions"]["sg"]["azure_geo_dr_pair"] == {}, "Singapore has one Azure region: no geo-DR"


def test_azure_deploys_only_zonal_regions_and_knows_their_grs_pair():
    doc = tf.regions_doc()
    for region in tf.deployed("azure"):
        assert region in doc["azure_zonal_regions"]
        assert region in doc["azure_paired_regions"], f"{region}: where would GRS copy it?"


@pytest.mark.parametrize("module,kit", REGION_KIT.items(), ids=lambda v: getattr(v, "name", "kit"))
def test_region_module_has_stream_bucket_and_runner(module, kit):
    types = {kind for kind, _, _ in tf.resources(module)}
    assert set(kit) <= types, f"{module.relative_to(tf.REPO)} lacks {set(kit) - types}"


def test_every_aws_region_has_a_provider_alias_and_module_block():
    providers = {p["alias"]: p["region"] for p in tf.providers(tf.INFRA / "aws", "aws")}
    calls = tf.module_calls(tf.INFRA / "aws")
    wired = set(re.findall(r"'([a-z0-9-]+)'", str(tf.locals_(tf.INFRA / "aws")["wired_regions"])))
    for region in tf.deployed("aws"):
        alias = region.replace("-", "_")
        assert providers.get(alias) == region, f"no aws provider alias {alias} for {region}"
        call = calls.get(alias)
        assert call, f"no module block for {region}"
        assert call["source"] == "./modules/region"
        assert call["region"] == region
        assert tf.one([call["providers"]])["aws"] == f"${{aws.{alias}}}", f"{region} module uses the wrong provider"
        gate = tf.expr(call["count"]).replace('"', "'")
        assert f"'{region}'" in gate and "local.deployed" in gate, f"{region} module is not gated by regions.json"
        assert "allowed_regions" in call and ".aws" in call["allowed_regions"]
        assert region in wired
    # No module block or provider for a region regions.json does not deploy.
    assert set(providers.values()) == set(tf.deployed("aws"))


@pytest.mark.parametrize("cloud", ["azure", "gcp"])
def test_for_each_roots_iterate_regions_json(cloud):
    root = tf.INFRA / cloud
    local = tf.locals_(root)
    assert "jsondecode(file(" in local["regions_doc"] and "/../regions.json" in local["regions_doc"]
    assert f"spec.{cloud}" in str(local["deployed"])
    call = tf.module_calls(root)["region"]
    assert tf.expr(call["for_each"]) == "local.deployed"
    assert tf.expr(call["region"]) == "each.key"
    assert f"allowed_regions[each.value.jurisdiction].{cloud}" in call["allowed_regions"] or (
        f"allowed_regions[each.value].{cloud}" in call["allowed_regions"]
    )


def test_aws_root_reads_regions_json_and_refuses_unwired_regions():
    root = tf.INFRA / "aws"
    local = tf.locals_(root)
    assert "/../regions.json" in local["regions_doc"] and "spec.aws" in str(local["deployed"])
    wiring = tf.resource(root, "terraform_data", "region_wiring")
    conditions = [p["condition"] for p in tf.one(wiring["lifecycle"])["precondition"]]
    assert any("setsubtract(keys(local.deployed), local.wired_regions)" in c for c in conditions)


@pytest.mark.parametrize("module", [AWS_MODULE, AZURE_MODULE, GCP_MODULE], ids=lambda p: p.parent.parent.name)
def test_modules_refuse_regions_outside_the_jurisdiction(module):
    guard = tf.resource(module, "terraform_data", "sovereignty")
    conditions = [p["condition"] for p in tf.one(guard["lifecycle"])["precondition"]]
    assert any("contains(var.allowed_regions, var.region)" in c for c in conditions)
    if module == AZURE_MODULE:
        assert any("contains(var.allowed_regions, var.pair_region)" in c for c in conditions)
    if module == AWS_MODULE:
        # aws v6 deprecates aws_region.name in favour of region.
        assert any("data.aws_region.current.region == var.region" in c for c in conditions)
        assert ".current.name" not in (module / "main.tf").read_text(encoding="utf-8")


@pytest.mark.parametrize("cloud", tf.CLOUDS)
def test_region_checks_are_not_deferred_to_apply(cloud):
    # A module-level depends_on on a resource defers the module's data sources, and with them
    # every precondition that reads one, to apply.
    for name, call in tf.module_calls(tf.INFRA / cloud).items():
        assert "depends_on" not in call, f"{cloud} module {name} depends_on a resource"


@pytest.mark.parametrize("cloud", tf.CLOUDS)
def test_state_lives_in_the_jurisdiction(cloud):
    root = tf.INFRA / cloud
    backend = tf.one(tf.parse(root / "backend.tf")["terraform"])["backend"]
    assert {"aws": "s3", "azure": "azurerm", "gcp": "gcs"}[cloud] in tf.one(backend)
    example = (root / "backend.hcl.example").read_text(encoding="utf-8")
    assert {"aws": "kms_key_id", "azure": "use_azuread_auth", "gcp": "kms_encryption_key"}[cloud] in example
    assert "state_region" in tf.variables(root)
    text = " ".join(str(b) for b in tf.blocks(root, "resource")) + str(tf.locals_(root))
    assert "var.state_region" in text and "allowed_regions[j]" in text
