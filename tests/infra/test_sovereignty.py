"""No resource sits outside its region: locations, storage policies and geo-DR pairs."""

from __future__ import annotations

import pytest

from tests.infra import tf

AZURE_MODULE = tf.INFRA / "azure/modules/region"
GCP_MODULE = tf.INFRA / "gcp/modules/region"

GCP_LOCATION_KEYS = ("location", "region")
GCP_GLOBAL = {
    # Global or project-level by nature; none stores event data.
    "google_service_account",
    "google_project_iam_member",
    "google_compute_firewall",
}


def test_pubsub_topics_store_messages_only_in_the_region():
    topics = list(tf.resources(GCP_MODULE, "google_pubsub_topic"))
    assert len(topics) >= 2
    for _, name, body in topics:
        policy = tf.one(body["message_storage_policy"])
        assert policy["allowed_persistence_regions"] == ["${var.region}"], f"topic {name} may persist elsewhere"
        assert policy.get("enforce_in_transit") is True, f"topic {name} does not enforce in-transit storage"
        assert "kms_key_name" in body


def test_pubsub_subscription_dead_letters_and_retains():
    body = tf.resource(GCP_MODULE, "google_pubsub_subscription", "pipeline")
    dead = tf.one(body["dead_letter_policy"])
    assert dead["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert "message_retention_duration" in body


def test_gcp_regional_resources_use_var_region():
    checked = 0
    for kind, name, body in tf.resources(GCP_MODULE):
        location = next((body[k] for k in GCP_LOCATION_KEYS if k in body), None)
        if location is None:
            continue
        checked += 1
        assert location in ("${var.region}", "${upper(var.region)}"), f"{kind}.{name} is placed at {location}"
    assert checked >= 7


def test_gcp_resources_are_regional_or_known_global():
    regional_without_location = {
        "google_pubsub_topic",  # pinned by message_storage_policy
        "google_pubsub_subscription",
        "google_kms_crypto_key",  # inherits its key ring's location
        "google_storage_bucket_object",
        "google_bigquery_table",  # inherits the dataset's location
        "google_compute_subnetwork",
        "terraform_data",
    }
    for kind, name, body in tf.resources(GCP_MODULE):
        if any(k in body for k in GCP_LOCATION_KEYS) or kind in GCP_GLOBAL or kind in regional_without_location:
            continue
        assert kind.endswith("_iam_member"), f"{kind}.{name}: where does it live?"


def test_azure_resources_live_in_the_region_or_its_pair():
    pair_resources = {("azurerm_resource_group", "pair"), ("azurerm_eventhub_namespace", "secondary")}
    checked = 0
    for kind, name, body in tf.resources(AZURE_MODULE):
        if "location" not in body:
            continue
        checked += 1
        if (kind, name) in pair_resources:
            assert body["location"] in ("${var.pair_region}", "${azurerm_resource_group.pair.location}")
        else:
            assert body["location"] in ("${var.region}", "${azurerm_resource_group.this.location}"), (
                f"{kind}.{name} is placed at {body['location']}"
            )
    assert checked >= 8


def test_azure_geo_dr_alias_points_at_the_pair_namespace():
    alias = tf.resource(AZURE_MODULE, "azurerm_eventhub_namespace_disaster_recovery_config", "this")
    assert alias["partner_namespace_id"] == "${azurerm_eventhub_namespace.secondary.id}"
    root_call = tf.module_calls(tf.INFRA / "azure")["region"]
    assert tf.expr(root_call["pair_region"]) == "each.value.pair"
    assert "azure_geo_dr_pair" in str(tf.locals_(tf.INFRA / "azure")["deployed"])
    text = (AZURE_MODULE / "main.eventhub.tf").read_text(encoding="utf-8")
    assert "METADATA ONLY" in text


def test_azure_grs_secondary_is_checked_against_the_jurisdiction():
    account = tf.resource(AZURE_MODULE, "azurerm_storage_account", "this")
    post = tf.one(tf.one(account["lifecycle"])["postcondition"])
    assert "self.secondary_location" in post["condition"] and "var.allowed_regions" in post["condition"]


@pytest.mark.parametrize("cloud", tf.CLOUDS)
def test_tags_are_merged_from_one_input_with_the_jurisdiction(cloud):
    module = tf.INFRA / cloud / "modules/region"
    name = "labels" if cloud == "gcp" else "tags"
    merged = tf.locals_(module)[name]
    assert f"var.{name}" in merged and "jurisdiction" in merged, f"{cloud}: local.{name} lacks the jurisdiction"
    taggable = [(k, n, b) for k, n, b in tf.resources(module) if name in b]
    assert len(taggable) >= 5
    for kind, rname, body in taggable:
        assert f"local.{name}" in str(body[name]), f"{cloud} {kind}.{rname} does not use local.{name}"
    root_var = tf.variables(tf.INFRA / cloud)[name]
    required = [v["condition"] for v in root_var["validation"]]
    assert any("cost-center" in c and "data-classification" in c for c in required)
