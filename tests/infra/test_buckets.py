"""Every bucket/container: encryption, lifecycle rules, public access blocked."""

from __future__ import annotations

import json

import pytest

from tests.infra import tf

AWS_MODULE = tf.INFRA / "aws/modules/region"
AZURE_MODULE = tf.INFRA / "azure/modules/region"
GCP_MODULE = tf.INFRA / "gcp/modules/region"

AWS_COMPANIONS = (
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_lifecycle_configuration",
    "aws_s3_bucket_versioning",
    "aws_s3_bucket_policy",
    "aws_s3_bucket_ownership_controls",
)


def _s3_buckets() -> list[str]:
    return [name for _, name, _ in tf.resources(AWS_MODULE, "aws_s3_bucket")]


def _companion(rtype: str, bucket: str) -> dict:
    for _, _, body in tf.resources(AWS_MODULE, rtype):
        if body["bucket"] == f"${{aws_s3_bucket.{bucket}.id}}":
            return body
    raise AssertionError(f"aws_s3_bucket.{bucket} has no {rtype}")


@pytest.mark.parametrize("bucket", _s3_buckets())
def test_s3_bucket_has_every_guard(bucket):
    for rtype in AWS_COMPANIONS:
        _companion(rtype, bucket)
    sse = tf.one(_companion("aws_s3_bucket_server_side_encryption_configuration", bucket)["rule"])
    default = tf.one(sse["apply_server_side_encryption_by_default"])
    assert default["sse_algorithm"] == "aws:kms" and "aws_kms_key" in default["kms_master_key_id"]
    block = _companion("aws_s3_bucket_public_access_block", bucket)
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[flag] is True, f"{bucket}: {flag} is not true"
    assert tf.one(_companion("aws_s3_bucket_versioning", bucket)["versioning_configuration"])["status"] == "Enabled"
    policy = _companion("aws_s3_bucket_policy", bucket)["policy"]
    assert "aws:SecureTransport" in policy and "Deny" in policy, f"{bucket}: no TLS-only policy"
    rules = _companion("aws_s3_bucket_lifecycle_configuration", bucket)["rule"]
    for rule in rules:
        assert rule["status"] == "Enabled"
        assert "abort_incomplete_multipart_upload" in rule
    assert any("expiration" in rule for rule in rules)


@pytest.mark.parametrize("bucket", _s3_buckets())
def test_no_s3_lifecycle_rule_covers_the_whole_bucket(bucket):
    # A rule without a prefix would expire the EMR scripts, the wheel and Flink's checkpoints.
    for rule in _companion("aws_s3_bucket_lifecycle_configuration", bucket)["rule"]:
        if set(rule) == {"id", "status", "filter", "abort_incomplete_multipart_upload"}:
            continue  # aborting incomplete uploads removes no object: it may cover the bucket
        prefix = tf.one(rule["filter"]).get("prefix", "")
        assert prefix.endswith("/") and len(prefix) > 1, f"{bucket}: rule {rule['id']} has no prefix filter"
        assert not prefix.startswith("emr/") or bucket == "logs", f"{bucket}: rule {rule['id']} ages emr/"


def _s3_rule(bucket: str, rule_id: str) -> dict:
    rules = _companion("aws_s3_bucket_lifecycle_configuration", bucket)["rule"]
    return next(r for r in rules if r["id"] == rule_id)


@pytest.mark.parametrize(
    "rule_id,prefix", [("aggregates", "aggregates_prefix"), ("dead-letters", "dead_letter_prefix")]
)
def test_aggregates_bucket_tiers_ia_30_glacier_ir_90_and_expires_configurably(rule_id, prefix):
    rule = _s3_rule("data", rule_id)
    assert tf.one(rule["filter"])["prefix"] == f"${{local.{prefix}}}/"
    transitions = {(t["days"], t["storage_class"]) for t in rule["transition"]}
    assert transitions == {(30, "STANDARD_IA"), (90, "GLACIER_IR")}  # both stay readable by Athena
    assert tf.one(rule["expiration"])["days"] == "${var.bucket.expiration_days}"


def test_kinesis_stream_is_kms_encrypted_with_configurable_mode_and_retention():
    stream = tf.resource(AWS_MODULE, "aws_kinesis_stream", "events")
    assert stream["encryption_type"] == "KMS" and "aws_kms_key" in stream["kms_key_id"]
    assert stream["retention_period"] == "${var.kinesis.retention_hours}"
    assert tf.one(stream["stream_mode_details"])["stream_mode"] == "${var.kinesis.mode}"
    # Provisioned by default: the shard count is derived from the declared peak (test_capacity.py).
    assert "optional(string, 'PROVISIONED')" in tf.variables(tf.INFRA / "aws")["kinesis"]["type"].replace('"', "'")


def test_emr_runs_a_beam_supported_flink_with_scaling_spot_and_encryption():
    cluster = tf.resource(AWS_MODULE, "aws_emr_cluster", "flink")
    assert "Flink" in cluster["applications"]
    assert cluster["release_label"] == "${var.emr.release_label}"
    assert "'emr-7.4.0', optional" in tf.variables(tf.INFRA / "aws")["emr"]["type"].replace('"', "'") or (
        "emr-7.4.0" in tf.variables(tf.INFRA / "aws")["emr"]["type"]
    )
    assert "aws_emr_security_configuration" in cluster["security_configuration"]
    assert cluster["log_uri"].startswith("s3://")
    assert "bootstrap_action" in cluster
    fleet = tf.resource(AWS_MODULE, "aws_emr_instance_fleet", "task_spot")
    assert fleet["target_spot_capacity"] == "${var.emr.task_spot_units}"
    tf.resource(AWS_MODULE, "aws_emr_managed_scaling_policy", "this")
    config = tf.resource(AWS_MODULE, "aws_emr_security_configuration", "this")["configuration"]
    assert "EnableAtRestEncryption = true" in config or "'EnableAtRestEncryption': True" in config


def test_emr_node_policy_is_scoped_to_this_regions_stream_and_bucket():
    documents = [b["aws_iam_policy_document"] for b in tf.blocks(AWS_MODULE, "data") if "aws_iam_policy_document" in b]
    policy = next(d["emr_ec2"] for d in documents if "emr_ec2" in d)
    for statement in policy["statement"]:
        for resource in statement["resources"]:
            assert resource != "*", f"statement {statement.get('sid')} grants on *"
            scoped = ("aws_kinesis_stream.events", "aws_s3_bucket.", "aws_kms_key.this")
            assert any(s in resource for s in scoped), f"{resource} is outside this region's stream, bucket and key"


def test_iterator_age_alarm_and_analytics_exist():
    alarm = tf.resource(AWS_MODULE, "aws_cloudwatch_metric_alarm", "iterator_age")
    assert alarm["metric_name"] == "GetRecords.IteratorAgeMilliseconds"
    table = tf.resource(AWS_MODULE, "aws_glue_catalog_table", "aggregates")
    # Partition keys come from the generated aggregates.glue.json (test_table_definitions.py).
    keys = next(b["partition_keys"] for b in table["dynamic"] if "partition_keys" in b)
    assert keys["for_each"] == "${local.glue.partition_keys}"
    glue = json.loads((AWS_MODULE / "aggregates.glue.json").read_text(encoding="utf-8"))
    assert [p["name"] for p in glue["partition_keys"]] == ["dt", "hour", "region"]
    workgroup = tf.resource(AWS_MODULE, "aws_athena_workgroup", "this")
    assert tf.one(workgroup["configuration"])["enforce_workgroup_configuration"] is True


@pytest.mark.parametrize("bucket", ["data", "logs"])
def test_gcs_bucket_is_uniform_private_versioned_encrypted(bucket):
    body = tf.resource(GCP_MODULE, "google_storage_bucket", bucket)
    assert body["uniform_bucket_level_access"] is True
    assert body["public_access_prevention"] == "enforced"
    assert tf.one(body["versioning"])["enabled"] is True
    assert "google_kms_crypto_key" in tf.one(body["encryption"])["default_kms_key_name"]
    assert body["lifecycle_rule"], f"{bucket} has no lifecycle rule"


def test_gcs_data_bucket_goes_nearline_30_coldline_90_and_deletes_configurably():
    rules = tf.resource(GCP_MODULE, "google_storage_bucket", "data")["lifecycle_rule"]
    moves = {(tf.one(r["condition"]).get("age"), tf.one(r["action"]).get("storage_class")) for r in rules}
    assert (30, "NEARLINE") in moves and (90, "COLDLINE") in moves
    deletes = [tf.one(r["condition"]).get("age") for r in rules if tf.one(r["action"])["type"] == "Delete"]
    assert "${var.bucket.delete_after_days}" in deletes


def test_azure_storage_is_adls_tls12_private_and_tiered():
    account = tf.resource(AZURE_MODULE, "azurerm_storage_account", "this")
    assert account["is_hns_enabled"] is True
    assert account["min_tls_version"] == "TLS1_2"
    assert account["allow_nested_items_to_be_public"] is False
    assert account["https_traffic_only_enabled"] is True
    assert account["infrastructure_encryption_enabled"] == "${var.storage.infrastructure_encryption}"
    assert tf.one(account["network_rules"])["default_action"] == "Deny"
    for _, name, container in tf.resources(AZURE_MODULE, "azurerm_storage_container"):
        assert container["container_access_type"] == "private", f"container {name} is not private"
    policy = tf.one(tf.resource(AZURE_MODULE, "azurerm_storage_management_policy", "this")["rule"])
    base = tf.one(tf.one(policy["actions"])["base_blob"])
    assert base["tier_to_cool_after_days_since_modification_greater_than"] == 30
    # Archive (unreadable until rehydrated) only after the query horizon, if at all.
    archive = base["tier_to_archive_after_days_since_modification_greater_than"]
    assert "var.storage.query_horizon_days < var.storage.delete_after_days" in archive
    assert base["delete_after_days_since_modification_greater_than"] == "${var.storage.delete_after_days}"
    prefixes = tf.one(policy["filters"])["prefix_match"]
    assert prefixes == [
        "${local.aggregates_container}/${local.aggregates_container}/",
        "${local.aggregates_container}/${local.dead_letter_prefix}/",
    ]
    # Terraform's own data-plane calls (blobs, file systems) pass the firewall.
    assert "var.storage.deployer_ip_ranges" in tf.one(account["network_rules"])["ip_rules"]


def test_azure_eventhubs_kafka_tier_rules_and_network():
    namespace = tf.resource(AZURE_MODULE, "azurerm_eventhub_namespace", "this")
    assert namespace["minimum_tls_version"] == "1.2"
    assert "'Standard', 'Premium'" in str(tf.variables(tf.INFRA / "azure")["eventhubs"]["validation"]).replace('"', "'")
    listen = tf.resource(AZURE_MODULE, "azurerm_eventhub_authorization_rule", "listen")
    send = tf.resource(AZURE_MODULE, "azurerm_eventhub_authorization_rule", "send")
    assert (listen["listen"], listen["send"], listen["manage"]) == (True, False, False)
    assert (send["listen"], send["send"], send["manage"]) == (False, True, False)
    tf.resource(AZURE_MODULE, "azurerm_eventhub_consumer_group", "pipeline")


def test_hdinsight_51_spark_with_flink_script_action_in_a_vnet_with_nsg():
    cluster = tf.resource(AZURE_MODULE, "azurerm_hdinsight_spark_cluster", "this")
    assert cluster["cluster_version"] == "5.1"
    assert tf.one(cluster["component_version"])["spark"] == "3.3"
    roles = tf.one(cluster["roles"])
    for role in ("head_node", "worker_node"):
        node = tf.one(roles[role])
        assert "script_actions" in node, f"{role} does not run the Flink script action"
        assert node["subnet_id"] == "${azurerm_subnet.hdinsight.id}"
    tf.resource(AZURE_MODULE, "azurerm_subnet_network_security_group_association", "hdinsight")
    settings = [n for _, n, _ in tf.resources(AZURE_MODULE, "azurerm_monitor_diagnostic_setting")]
    assert {"eventhub", "blob", "hdinsight"} <= set(settings)


def test_gcs_lifecycle_rules_age_only_the_pipelines_output():
    for bucket in ("data", "logs"):
        for rule in tf.resource(GCP_MODULE, "google_storage_bucket", bucket)["lifecycle_rule"]:
            condition, action = tf.one(rule["condition"]), tf.one(rule["action"])
            if action["type"] == "AbortIncompleteMultipartUpload":
                continue
            assert condition.get("matches_prefix"), f"{bucket}: a {action['type']} rule covers the whole bucket"
    assert tf.locals_(GCP_MODULE)["expiring_prefixes"] == [
        "${local.aggregates_prefix}/",
        "${local.dead_letter_prefix}/",
    ]


def test_access_logs_can_be_delivered():
    # S3 writes server access logs as logging.s3 into the SSE-KMS logs bucket.
    key_policy = tf.resource(AWS_MODULE, "aws_kms_key", "this")["policy"]
    assert "logging.s3.amazonaws.com" in key_policy
    # Cloud Storage writes usage logs as cloud-storage-analytics@google.com.
    grant = tf.resource(GCP_MODULE, "google_storage_bucket_iam_member", "access_log_writer")
    assert grant["bucket"] == "${google_storage_bucket.logs.name}"
    assert grant["member"] == "group:cloud-storage-analytics@google.com"
    assert grant["role"] == "roles/storage.objectCreator"
