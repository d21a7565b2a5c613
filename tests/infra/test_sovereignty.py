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
    # Project-level log routing and alerting configuration; the log bucket itself is regional.
    "google_logging_project_sink",
    "google_logging_project_exclusion",
    "google_monitoring_notification_channel",
    "google_monitoring_alert_policy",
}


def test_pubsub_topics_store_messages_only_in_the_region():
    topics = list(tf.resources(GCP_MODULE, "google_pubsub_topic"))
    assert len(topics) >= 2
    for _, name, body in topics:
        policy = tf.one(body["message_storage_policy"])
        assert policy["allowed_persistence_regions"] == ["${var.region}"], f"topic {name} may persist elsewhere"
        assert policy.get("enforce_in_transit") is True, f"topic {name} does not enforce in-transit storage"
        assert "kms_key_name" in body


def test_dataflow_subscription_has_no_policy_dataflow_ignores_and_retains():
    # Dataflow acknowledges messages itself: dead-letter and retry policies do not apply.
    body = tf.resource(GCP_MODULE, "google_pubsub_subscription", "pipeline")
    assert "dead_letter_policy" not in body and "retry_policy" not in body
    assert "message_retention_duration" in body


def test_dataflow_and_flow_logs_stay_in_the_region():
    bucket = tf.resource(GCP_MODULE, "google_logging_project_bucket_config", "regional")
    assert bucket["location"] == "${var.region}"
    sink = tf.resource(GCP_MODULE, "google_logging_project_sink", "regional")
    assert "google_logging_project_bucket_config.regional.id" in sink["destination"]
    exclusion = tf.resource(GCP_MODULE, "google_logging_project_exclusion", "regional")
    assert sink["filter"] == exclusion["filter"] == "${local.regional_log_filter}"
    log_filter = tf.locals_(GCP_MODULE)["regional_log_filter"]
    assert "dataflow_step" in log_filter and "gce_subnetwork" in log_filter


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
    pair_locations = ("${var.pair_region}", "${azurerm_resource_group.pair[0].location}")
    checked = 0
    for kind, name, body in tf.resources(AZURE_MODULE):
        if "location" not in body:
            continue
        checked += 1
        if (kind, name) in pair_resources:
            assert body["location"] in pair_locations
        else:
            assert body["location"] in ("${var.region}", "${azurerm_resource_group.this.location}"), (
                f"{kind}.{name} is placed at {body['location']}"
            )
    assert checked >= 8


def test_azure_geo_dr_alias_points_at_the_pair_namespace_and_clients_use_it():
    alias = tf.resource(AZURE_MODULE, "azurerm_eventhub_namespace_disaster_recovery_config", "this")
    assert alias["partner_namespace_id"] == "${azurerm_eventhub_namespace.secondary[0].id}"
    assert tf.expr(alias["count"]) == "local.geo_dr ? 1 : 0"
    # The runner profile's source is the alias (when there is one), not the primary namespace.
    profile = tf.blocks(AZURE_MODULE, "output")
    source = next(b["runner_profile"]["value"]["source"] for b in profile if "runner_profile" in b)
    assert source.startswith("eventhubs://${local.eventhubs_endpoint}/")
    endpoint = tf.locals_(AZURE_MODULE)["eventhubs_endpoint"]
    assert "azurerm_eventhub_namespace_disaster_recovery_config.this[0].name" in endpoint
    # Symmetric network rules: the secondary admits the same subnet and addresses.
    primary = tf.one(tf.resource(AZURE_MODULE, "azurerm_eventhub_namespace", "this")["network_rulesets"])
    secondary = tf.one(tf.resource(AZURE_MODULE, "azurerm_eventhub_namespace", "secondary")["network_rulesets"])
    assert primary["virtual_network_rule"] == secondary["virtual_network_rule"]
    assert primary["dynamic"] == secondary["dynamic"]
    root_call = tf.module_calls(tf.INFRA / "azure")["region"]
    assert tf.expr(root_call["pair_region"]) == "each.value.pair"
    assert "azure_geo_dr_pair" in str(tf.locals_(tf.INFRA / "azure")["deployed"])
    text = (AZURE_MODULE / "main.eventhub.tf").read_text(encoding="utf-8")
    assert "METADATA ONLY" in text


def test_azure_grs_secondary_is_checked_at_plan_against_the_jurisdiction():
    account = tf.resource(AZURE_MODULE, "azurerm_storage_account", "this")
    lifecycle = tf.one(account["lifecycle"])
    assert "postcondition" not in lifecycle, "a postcondition fails after replication has started"
    pre = tf.one(lifecycle["precondition"])
    assert "var.grs_secondary" in pre["condition"] and "var.allowed_regions" in pre["condition"]
    assert account["account_replication_type"] == "${local.replication}"
    replication = tf.locals_(AZURE_MODULE)["replication"]
    assert "contains(var.allowed_regions, var.grs_secondary)" in replication and "ZRS" in replication
    call = tf.module_calls(tf.INFRA / "azure")["region"]
    assert tf.expr(call["grs_secondary"]) == "each.value.grs_secondary"
    assert "azure_paired_regions" in str(tf.locals_(tf.INFRA / "azure")["deployed"])


def _azure_module_plan(region: str, jurisdiction: str) -> tuple[str, str]:
    """What the Azure root hands the module for `region`, and the replication it would pick."""
    doc = tf.regions_doc()
    pair = doc["jurisdictions"][jurisdiction]["azure_geo_dr_pair"].get(region, "")
    grs = doc["azure_paired_regions"].get(region, "")
    return pair, "GRS" if grs in doc["allowed_regions"][jurisdiction]["azure"] else "ZRS"


def test_singapore_has_neither_geo_dr_nor_grs_to_hong_kong():
    assert _azure_module_plan("southeastasia", "sg") == ("", "ZRS")
    assert _azure_module_plan("westeurope", "eu") == ("northeurope", "GRS")
    assert _azure_module_plan("eastus", "us") == ("westus2", "GRS")


@pytest.mark.parametrize("cloud", tf.CLOUDS)
def test_tags_are_merged_from_one_input_with_the_jurisdiction(cloud):
    module = tf.INFRA / cloud / "modules/region"
    name = "labels" if cloud == "gcp" else "tags"
    merged = tf.locals_(module)[name]
    assert f"var.{name}" in merged and "jurisdiction" in merged, f"{cloud}: local.{name} lacks the jurisdiction"
    # A notification channel's labels are its settings (the e-mail address), not tags.
    channel = "google_monitoring_notification_channel"
    taggable = [(k, n, b) for k, n, b in tf.resources(module) if name in b and k != channel]
    assert len(taggable) >= 5
    for kind, rname, body in taggable:
        assert f"local.{name}" in str(body[name]), f"{cloud} {kind}.{rname} does not use local.{name}"
    root_var = tf.variables(tf.INFRA / cloud)[name]
    required = [v["condition"] for v in root_var["validation"]]
    assert any("cost-center" in c and "data-classification" in c for c in required)
