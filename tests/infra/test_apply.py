"""What would fail at apply, or warn of removal, though checkov and python-hcl2 pass: argument
values the APIs refuse, missing rights and network paths, provider versions below the
arguments used, deprecated arguments, and alerts on every cloud."""

from __future__ import annotations

import re

import pytest

from tests.infra import tf

AWS_MODULE = tf.INFRA / "aws/modules/region"
AZURE_MODULE = tf.INFRA / "azure/modules/region"
GCP_MODULE = tf.INFRA / "gcp/modules/region"

# (provider, the argument as it appears in our .tf files, the provider version that introduced it,
# where that is recorded). The lower bound of every root and module must be at least the version.
INTRODUCED = [
    ("aws", "data.aws_region.current.region", (6, 0), "aws v6.0.0 release notes (region replaces name)"),
    ("azurerm", "namespace_id", (4, 12), "azurerm CHANGELOG-v4.md 4.12.0, #28055"),
    ("azurerm", "enabled_metric", (4, 31), "azurerm git tag v4.31.0 adds enabled_metric to the diagnostic setting"),
    ("google", "enforce_in_transit", (6, 18), "google CHANGELOG 6.18.0, #20926"),
]


def _bound(directory, provider: str) -> tuple[int, int]:
    terraform = tf.one(tf.parse(directory / "versions.tf")["terraform"])
    version = tf.one(terraform["required_providers"])[provider]["version"]
    major, minor = re.fullmatch(r"~> (\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


@pytest.mark.parametrize("provider,argument,since,source", INTRODUCED, ids=lambda v: str(v)[:30])
def test_provider_lower_bounds_cover_the_arguments_used(provider, argument, since, source):
    cloud = {"aws": "aws", "azurerm": "azure", "google": "gcp"}[provider]
    text = "".join(p.read_text(encoding="utf-8") for p in (tf.INFRA / cloud).rglob("*.tf"))
    assert argument in text, f"{argument} is no longer used: drop it from INTRODUCED"
    for directory in (tf.INFRA / cloud, tf.INFRA / cloud / "modules/region"):
        assert _bound(directory, provider) >= since, f"{directory.name}: {provider} below {since} ({source})"


def test_dataflow_autoscaling_uses_the_flex_template_api_enum():
    job = tf.resource(GCP_MODULE, "google_dataflow_flex_template_job", "analytics")
    # THROUGHPUT_BASED is Beam's option value; the API takes AUTOSCALING_ALGORITHM_NONE|BASIC.
    assert job["autoscaling_algorithm"] in ("AUTOSCALING_ALGORITHM_NONE", "AUTOSCALING_ALGORITHM_BASIC")


def test_emr_service_role_may_use_the_ebs_key():
    documents = [b["aws_iam_policy_document"] for b in tf.blocks(AWS_MODULE, "data") if "aws_iam_policy_document" in b]
    policy = next(d["emr_service_ebs_key"] for d in documents if "emr_service_ebs_key" in d)
    actions = {a for statement in policy["statement"] for a in statement["actions"]}
    assert {"kms:GenerateDataKey*", "kms:Decrypt", "kms:CreateGrant"} <= actions
    assert all(s["resources"] == ["${aws_kms_key.this.arn}"] for s in policy["statement"])
    attached = tf.resource(AWS_MODULE, "aws_iam_role_policy", "emr_service_ebs_key")
    assert attached["role"] == "${aws_iam_role.emr_service.id}"
    cluster = tf.resource(AWS_MODULE, "aws_emr_cluster", "flink")
    assert "${aws_iam_role_policy.emr_service_ebs_key}" in cluster["depends_on"]


def test_emr_nodes_have_https_egress_without_owning_emrs_rules():
    rule = tf.resource(AWS_MODULE, "aws_vpc_security_group_egress_rule", "emr_https")
    assert (rule["from_port"], rule["to_port"], rule["ip_protocol"]) == (443, 443, "tcp")
    groups = rule["for_each"]
    assert "aws_security_group.emr_primary.id" in str(groups) and "aws_security_group.emr_nodes.id" in str(groups)
    # Inline egress/ingress blocks would make Terraform delete the rules EMR adds.
    for _, name, body in tf.resources(AWS_MODULE, "aws_security_group"):
        assert "egress" not in body and "ingress" not in body, f"security group {name} has inline rules"


def test_managed_scaling_owns_the_task_fleet_size():
    fleet = tf.resource(AWS_MODULE, "aws_emr_instance_fleet", "task_spot")
    ignored = tf.one(fleet["lifecycle"])["ignore_changes"]
    assert set(ignored) >= {"${target_spot_capacity}", "${target_on_demand_capacity}"} or set(ignored) >= {
        "target_spot_capacity",
        "target_on_demand_capacity",
    }


def test_no_deprecated_arguments():
    everything = "".join(p.read_text(encoding="utf-8") for p in tf.tf_files())
    assert "aws_region.current.name" not in everything  # aws v6: region
    assert re.search(r"^\s*filter \{\}", everything, re.M) is None  # S3 lifecycle: filter { prefix }
    for _, name, body in tf.resources(AZURE_MODULE, "azurerm_monitor_diagnostic_setting"):
        assert "metric" not in body, f"diagnostic setting {name}: metric is removed in azurerm 5, use enabled_metric"
    cluster = tf.resource(AZURE_MODULE, "azurerm_hdinsight_spark_cluster", "this")
    assert "monitor" not in cluster and "extension" in cluster  # classic integration -> Azure Monitor agent


def test_module_calls_carry_no_depends_on_and_azure_firewall_admits_terraform():
    for cloud in tf.CLOUDS:
        for call in tf.module_calls(tf.INFRA / cloud).values():
            assert "depends_on" not in call
    storage = tf.variables(tf.INFRA / "azure")["storage"]
    assert "deployer_ip_ranges" in storage["type"]


def test_every_cloud_alerts_on_source_lag_job_health_and_dead_letters():
    aws = {name: body for _, name, body in tf.resources(AWS_MODULE, "aws_cloudwatch_metric_alarm")}
    assert aws["iterator_age"]["metric_name"] == "GetRecords.IteratorAgeMilliseconds"
    assert aws["unhealthy_nodes"]["namespace"] == "AWS/ElasticMapReduce"
    assert aws["dead_letters"]["dimensions"]["FilterId"] == "${aws_s3_bucket_metric.dead_letters.name}"
    metric = tf.resource(AWS_MODULE, "aws_s3_bucket_metric", "dead_letters")
    assert tf.one(metric["filter"])["prefix"] == "${local.dead_letter_prefix}/"
    assert all(a["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"] for a in aws.values())

    azure = {name: body for _, name, body in tf.resources(AZURE_MODULE, "azurerm_monitor_metric_alert")}
    lag = {c["metric_name"]: c for c in azure["consumer_stalled"]["criteria"]}
    assert set(lag) == {"IncomingMessages", "OutgoingMessages"}
    dead = tf.resource(AZURE_MODULE, "azurerm_monitor_scheduled_query_rules_alert_v2", "dead_letters")
    assert "local.dead_letter_prefix" in tf.one(dead["criteria"])["query"]
    assert "alert_emails" in tf.variables(tf.INFRA / "azure")

    policies = {name: body for _, name, body in tf.resources(GCP_MODULE, "google_monitoring_alert_policy")}
    filters = {name: tf.one(tf.one(p["conditions"])["condition_threshold"])["filter"] for name, p in policies.items()}
    assert "subscription/oldest_unacked_message_age" in filters["source_lag"]
    assert "job/system_lag" in filters["system_lag"]
    assert "dead_letters_written" in filters["dead_letters"]
    assert "alert_emails" in tf.variables(tf.INFRA / "gcp")


def test_checkov_skips_name_no_false_reason():
    text = "".join(p.read_text(encoding="utf-8") for p in tf.tf_files())
    assert "short-lived SAS" not in text
    assert "which every deployed region has" not in text
