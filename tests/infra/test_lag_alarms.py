"""Every cloud's source-lag alarm takes its threshold from a validated variable that the root passes down."""

from __future__ import annotations

import re

import pytest

from tests.infra import tf

AWS_MODULE = tf.INFRA / "aws" / "modules" / "region"
AZURE_MODULE = tf.INFRA / "azure" / "modules" / "region"
GCP_MODULE = tf.INFRA / "gcp" / "modules" / "region"


def _conditions(directory, variable: str) -> str:
    return " ".join(v["condition"] for v in tf.variables(directory)[variable].get("validation", []))


def _allowed(condition: str, variable: str) -> list[int]:
    found = re.search(rf"contains\(\[([0-9, ]+)\], var\.{variable}\)", condition)
    assert found, f"var.{variable} is not validated against a list of values: {condition}"
    return [int(v) for v in found.group(1).split(",")]


@pytest.mark.parametrize("cloud,variable", [
    ("aws", "iterator_age_alarm_ms"),
    ("azure", "source_lag_alert_minutes"),
    ("gcp", "alert_thresholds"),
])
def test_root_passes_the_lag_threshold_to_every_region(cloud, variable):
    root = tf.INFRA / cloud
    assert "default" in tf.variables(root)[variable], f"infra/{cloud}: var.{variable} needs a default"
    module = tf.INFRA / cloud / "modules" / "region"
    assert variable in tf.variables(module)
    text = (root / "main.tf").read_text(encoding="utf-8")
    assert re.search(rf"\b{variable}\s*=\s*(var|local\.module_settings)\.{variable}\b", text), (
        f"infra/{cloud}/main.tf does not pass {variable} to its region module"
    )


def test_aws_lag_alarm_threshold_is_the_variable_and_bounded():
    alarm = tf.resource(AWS_MODULE, "aws_cloudwatch_metric_alarm", "iterator_age")
    assert alarm["metric_name"] == "GetRecords.IteratorAgeMilliseconds"
    assert alarm["threshold"] == "${var.iterator_age_alarm_ms}"
    for directory in (AWS_MODULE, tf.INFRA / "aws"):
        condition = _conditions(directory, "iterator_age_alarm_ms")
        assert "var.iterator_age_alarm_ms >= 1000" in condition and "var.iterator_age_alarm_ms <= 86400000" in condition


def test_gcp_lag_alarm_threshold_is_the_variable_and_bounded():
    policy = tf.resource(GCP_MODULE, "google_monitoring_alert_policy", "source_lag")
    threshold = tf.one(tf.one(policy["conditions"])["condition_threshold"])
    assert "subscription/oldest_unacked_message_age" in threshold["filter"]
    assert threshold["threshold_value"] == "${var.alert_thresholds.oldest_unacked_seconds}"
    for directory in (GCP_MODULE, tf.INFRA / "gcp"):
        assert "var.alert_thresholds.oldest_unacked_seconds >= 30" in _conditions(directory, "alert_thresholds")


def test_azure_lag_alarm_window_is_the_variable_and_every_allowed_value_has_a_window():
    alert = tf.resource(AZURE_MODULE, "azurerm_monitor_metric_alert", "consumer_stalled")
    assert alert["window_size"] == "${local.source_lag_windows[tostring(var.source_lag_alert_minutes)]}"
    windows = tf.locals_(AZURE_MODULE)["source_lag_windows"]
    root_default = tf.variables(tf.INFRA / "azure")["source_lag_alert_minutes"]["default"]
    for directory in (AZURE_MODULE, tf.INFRA / "azure"):
        allowed = _allowed(_conditions(directory, "source_lag_alert_minutes"), "source_lag_alert_minutes")
        # Each allowed value maps to an ISO-8601 window of the same length; nothing else is accepted.
        assert sorted(int(k) for k in windows) == sorted(allowed)
        assert root_default in allowed
    for minutes, window in windows.items():
        hours = re.fullmatch(r"PT(\d+)H", window)
        assert (int(hours.group(1)) * 60 if hours else int(re.fullmatch(r"PT(\d+)M", window).group(1))) == int(minutes)
    # Azure evaluates at most every window: the frequency may not exceed the shortest window.
    assert alert["frequency"] == "PT5M" and min(int(k) for k in windows) >= 5
